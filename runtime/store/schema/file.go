package schema

import (
	"time"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// File is an uploaded file. Its bytes live in the blob store under Key,
// which the server chooses; records reference it through File fields (an
// app's File schema embeds this one and adds the edges of its File fields).
type File struct {
	ent.Schema
}

// Annotations of File.
func (File) Annotations() []schema.Annotation {
	return []schema.Annotation{
		entsql.Annotation{Table: "kiln_files"},
		entgql.Skip(entgql.SkipWhereInput | entgql.SkipOrderField | entgql.SkipMutationCreateInput | entgql.SkipMutationUpdateInput),
		schema.Comment("An uploaded file. url is a short-lived download link, issued to viewers who may read a record that references the file (and to its uploader until it is attached)."),
	}
}

// Fields of File.
func (File) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("id", uuid.UUID{}).Default(uuid.New).Immutable(),
		field.Time("created_at").Default(time.Now).Immutable(),
		field.String("key").Unique().Immutable().Annotations(entgql.Skip()).Comment("Object key in the blob store, chosen by the server."),
		field.String("filename").Comment("The file name given by the uploader."),
		field.String("content_type").Comment("The MIME type the file was uploaded with."),
		field.Int("size").Comment("Size in bytes."),
		field.String("sha256").Optional().Nillable().Comment("SHA-256 of the content in lowercase hex, when known."),
		field.Enum("status").Values("pending", "ready", "deleting").Default("pending").Annotations(entgql.Skip()),
		field.UUID("uploader_id", uuid.UUID{}).Immutable().Annotations(entgql.Skip()),
		field.Time("expires_at").Annotations(entgql.Skip()).Comment("When the upload ticket expires."),
		field.Time("active_at").Default(time.Now).Annotations(entgql.Skip()).
			Comment("Creation or last attachment: unreferenced files idle for longer than the upload TTL are removed."),
	}
}

// Indexes of File.
func (File) Indexes() []ent.Index {
	return []ent.Index{index.Fields("status", "active_at"), index.Fields("uploader_id")}
}
