package clientapi

// Files support, isolated here until the IR has File fields (branch files).
//
// The server's Files API (graph/files.graphql on that branch):
//
//	type File implements Node { id filename contentType size sha256 url(expiresIn: Int = 900) createdAt }
//	createUpload(input: CreateUploadInput!): UploadTicket!
//	completeUpload(fileId: ID!): File!
//
// A model field `avatar: File` reads as `avatar: File` and is set with
// `avatarID: ID` in create/update inputs; `attachments: [File!]!` reads as a
// list and is set with `attachmentIDs: [ID!]`. To wire it once the IR has a
// File kind: make FileKind ir.File (model() already skips File fields in
// its scalar loops and adds them through the functions below).

import "kiln/generator/internal/ir"

// FileKind is the client type kind of a File field.
const FileKind ir.Kind = "File"

// FileSelection is the selection set of a File.
const FileSelection = "{ id filename contentType size sha256 url createdAt }"

// isFile reports whether an IR field is a File field. The IR on this branch
// has no File kind yet.
func isFile(f *ir.Field) bool { return f.Kind == FileKind }

// fileOutputFields are the File fields of a model's output type.
func fileOutputFields(m *ir.Model) []Field {
	var out []Field
	for _, f := range m.Fields {
		if isFile(f) {
			out = append(out, Field{Name: f.Name, Description: f.Description, Type: Type{Kind: FileKind, List: f.List}, Nullable: f.Nullable})
		}
	}
	return out
}

// fileInputFields are the id fields that attach uploaded files: avatarID,
// attachmentIDs.
func fileInputFields(m *ir.Model, update bool) []Field {
	var out []Field
	for _, f := range m.Fields {
		if !isFile(f) {
			continue
		}
		if f.List {
			out = append(out, Field{Name: FileInputName(f.Name, true), Description: "Ids of uploaded files (completeUpload) for " + f.Name + ".", Type: Type{Kind: ir.ID, List: true}, Nullable: true})
		} else {
			out = append(out, Field{Name: FileInputName(f.Name, false), Description: "Id of an uploaded file (completeUpload) for " + f.Name + ".", Type: Type{Kind: ir.ID}, Nullable: true, Patch: update && f.Nullable})
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
	"file":           {Name: "File", Field: "node", Text: "query File($id: ID!, $expiresIn: Int) { node(id: $id) { ... on File { id filename contentType size sha256 url(expiresIn: $expiresIn) createdAt } } }"},
}

// FileDocNames lists FileDocs in a fixed order.
var FileDocNames = []string{"createUpload", "completeUpload", "file"}

// FilesSDL is the Files API the documents are checked against until the
// generated schema has it.
const FilesSDL = `scalar Upload
type File implements Node { id: ID!  filename: String!  contentType: String!  size: Int!  sha256: String  url(expiresIn: Int = 900): String!  createdAt: Time! }
input CreateUploadInput { filename: String!  contentType: String!  size: Int!  sha256: String }
type UploadHeader { name: String!  value: String! }
type UploadTicket { fileId: ID!  url: String!  method: String!  headers: [UploadHeader!]!  expiresAt: Time! }
extend type Mutation { createUpload(input: CreateUploadInput!): UploadTicket!  completeUpload(fileId: ID!): File!  uploadFile(file: Upload!): File! }
`
