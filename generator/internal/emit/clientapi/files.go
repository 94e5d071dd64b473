package clientapi

// File fields (ir.Model.Files): `avatar: File` reads as a File object and
// is set with `avatarID: ID` in create/update inputs; `attachments:
// [File!]!` reads as a list and is set with `attachmentIDs: [ID!]` (an
// update replaces the list). The server's Files API is graph/files.graphql:
//
//	type File implements Node { id filename contentType size sha256 url(expiresIn: Int = 900) createdAt }
//	createUpload(input: CreateUploadInput!): UploadTicket!
//	completeUpload(fileId: ID!): File!
//	uploadFile(file: Upload!): File!   (multipart request)

import "kiln/generator/internal/ir"

// FileKind is the client type kind of a File field (KilnFile in the SDKs).
const FileKind ir.Kind = "File"

// FileSelection is the selection set of a File.
const FileSelection = "{ id filename contentType size sha256 url createdAt }"

// fileOutputFields are the File fields of a model's output type. Fields
// with their own @auth are left out, like other fields with rules.
func fileOutputFields(m *ir.Model) []Field {
	var out []Field
	for _, f := range m.Files {
		if len(f.Rules) > 0 {
			continue
		}
		out = append(out, Field{Name: f.Name, Description: f.Description, Type: Type{Kind: FileKind, List: f.List}, Nullable: f.Nullable})
	}
	return out
}

// fileInputFields are the id fields that attach uploaded files (avatarID,
// attachmentIDs), with the server's descriptions. In updates, readonly
// fields are left out and a nullable single field is a Patch (null
// detaches the file).
func fileInputFields(m *ir.Model, update bool) []Field {
	var out []Field
	for _, f := range m.Files {
		name := FileInputName(f.Name, f.List)
		switch {
		case update && f.Readonly:
		case f.List && update:
			out = append(out, Field{Name: name, Description: "Replaces the files of " + f.Name + " (in this order).", Type: Type{Kind: ir.ID, List: true}, Nullable: true})
		case f.List:
			out = append(out, Field{Name: name, Description: "Completed uploads for " + f.Name + ", in order.", Type: Type{Kind: ir.ID, List: true}, Nullable: true})
		case update && f.Nullable:
			out = append(out, Field{Name: name, Description: "A completed upload for " + f.Name + "; null detaches the file.", Type: Type{Kind: ir.ID}, Nullable: true, Patch: true})
		default:
			out = append(out, Field{Name: name, Description: "A completed upload for " + f.Name + ".", Type: Type{Kind: ir.ID}, Nullable: update || f.Nullable})
		}
	}
	return out
}

// FileInputName is the input field that sets a File field: avatar ->
// avatarID, attachments -> attachmentIDs.
func FileInputName(field string, list bool) string {
	if list {
		return IDsName(field)
	}
	return field + "ID"
}

// fileSelection is the sub-selection of an output field ("" for scalars).
func fileSelection(f Field) string {
	if f.Type.Kind == FileKind {
		return " " + FileSelection
	}
	return ""
}

// FileDocs are the documents of the upload/download runtime.
var FileDocs = map[string]Document{
	"createUpload":   {Name: "CreateUpload", Field: "createUpload", Text: "mutation CreateUpload($input: CreateUploadInput!) { createUpload(input: $input) { fileId url method headers { name value } expiresAt } }"},
	"completeUpload": {Name: "CompleteUpload", Field: "completeUpload", Text: "mutation CompleteUpload($fileId: ID!) { completeUpload(fileId: $fileId) " + FileSelection + " }"},
	"uploadFile":     {Name: "UploadFile", Field: "uploadFile", Text: "mutation UploadFile($file: Upload!) { uploadFile(file: $file) " + FileSelection + " }"},
	"file":           {Name: "File", Field: "node", Text: "query File($id: ID!, $expiresIn: Int) { node(id: $id) { ... on File { id filename contentType size sha256 url(expiresIn: $expiresIn) createdAt } } }"},
	"fileImage":      {Name: "FileImage", Field: "node", Text: "query FileImage($id: ID!, $expiresIn: Int, $transform: ImageTransform!) { node(id: $id) { ... on File { url(expiresIn: $expiresIn, transform: $transform) } } }"},
}

// FileDocNames lists FileDocs in a fixed order.
var FileDocNames = []string{"createUpload", "completeUpload", "uploadFile", "file", "fileImage"}
