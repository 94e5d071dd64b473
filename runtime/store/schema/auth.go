// Package schema defines Kiln's own tables: accounts, sessions, roles,
// one-time tokens, idempotency keys and uploaded files. The server reads and
// writes them through the store client generated from these definitions
// (kiln/runtime/store); an app's ent schema embeds the same types, so its
// migrations create the tables and its File records can be referenced by
// its models.
package schema

import (
	"time"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// AuthUser is an account: email and password, identities at OpenID
// Connect providers, or anonymous.
type AuthUser struct {
	ent.Schema
}

// Annotations of AuthUser.
func (AuthUser) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Annotation{Table: "kiln_users"}, entgql.Skip(entgql.SkipAll)}
}

// Fields of AuthUser.
func (AuthUser) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("id", uuid.UUID{}).Default(uuid.New).Immutable(),
		field.Time("created_at").Default(time.Now).Immutable(),
		field.Time("updated_at").Default(time.Now).UpdateDefault(time.Now),
		field.String("email").Optional().Nillable().Unique().Comment("Lower-cased; null for anonymous users."),
		field.Bool("email_verified").Default(false).Comment("The account's email (the held one, never a pending one) is proven to be its owner's: by a provider that asserted it verified, or by a mail that reached it (a password reset)."),
		field.String("pending_email").Optional().Nillable().Comment("Lower-cased address this account signed up with while another account held it: shown as its email and good for signing in, but it never claims the address (no reset mails, not unique)."),
		field.String("password_hash").Optional().Sensitive().Comment("argon2id in PHC format."),
		field.Bool("anonymous").Default(false),
		field.Int("token_version").Default(1).Comment("Incremented to end every session of the user (sign out everywhere, password change)."),
		field.JSON("claims", map[string]any{}).Optional().Comment("Custom claims set by admins, carried in access tokens ($viewer.claims.<name> in rules)."),
	}
}

// Indexes of AuthUser.
func (AuthUser) Indexes() []ent.Index {
	return []ent.Index{index.Fields("pending_email")}
}

// Edges of AuthUser.
func (AuthUser) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("sessions", AuthSession.Type).Annotations(entsql.OnDelete(entsql.Cascade)),
		edge.To("roles", AuthRole.Type).Annotations(entsql.OnDelete(entsql.Cascade)),
		edge.To("tokens", AuthToken.Type).Annotations(entsql.OnDelete(entsql.Cascade)),
		edge.To("identities", AuthIdentity.Type).Annotations(entsql.OnDelete(entsql.Cascade)),
		edge.To("factors", AuthFactor.Type).Annotations(entsql.OnDelete(entsql.Cascade)),
		edge.To("devices", AuthDevice.Type).Annotations(entsql.OnDelete(entsql.Cascade)),
	}
}

// AuthDevice is a device of a user that receives push notifications: its
// APNs or FCM token, unique (a token registered by another user moves to
// them), and the sign-in that registered it (its session family: signing
// out removes the device).
type AuthDevice struct {
	ent.Schema
}

// Annotations of AuthDevice.
func (AuthDevice) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Annotation{Table: "kiln_devices"}, entgql.Skip(entgql.SkipAll)}
}

// Fields of AuthDevice.
func (AuthDevice) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("id", uuid.UUID{}).Default(uuid.New).Immutable(),
		field.Time("created_at").Default(time.Now).Immutable(),
		field.Time("updated_at").Default(time.Now).UpdateDefault(time.Now),
		field.UUID("user_id", uuid.UUID{}),
		field.String("platform").Comment("ios (APNs) or android (FCM)."),
		field.String("token").Unique().Comment("The APNs device token (hex) or the FCM registration token."),
		field.String("app_id").Comment("The iOS bundle id (the APNs topic) or the Android package name."),
		field.String("locale").Default("").Comment("The device's locale (BCP 47), for the app's own use."),
		field.UUID("session_family", uuid.UUID{}).Optional().Nillable().Comment("The session family of the sign-in that registered the device: signing it out removes the device."),
		field.JSON("topics", []string{}).Optional().Comment("The topics the device is subscribed to."),
	}
}

// Edges of AuthDevice.
func (AuthDevice) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("user", AuthUser.Type).Ref("devices").Field("user_id").Unique().Required(),
	}
}

// Indexes of AuthDevice.
func (AuthDevice) Indexes() []ent.Index {
	return []ent.Index{index.Fields("user_id"), index.Fields("session_family")}
}

// AuthFactor is a second factor of a user: a TOTP secret, pending until a
// first code confirms it, then active (sign-ins answer an MFA challenge).
type AuthFactor struct {
	ent.Schema
}

// Annotations of AuthFactor.
func (AuthFactor) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Annotation{Table: "kiln_factors"}, entgql.Skip(entgql.SkipAll)}
}

// Fields of AuthFactor.
func (AuthFactor) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("id", uuid.UUID{}).Default(uuid.New).Immutable(),
		field.Time("created_at").Default(time.Now).Immutable(),
		field.UUID("user_id", uuid.UUID{}),
		field.String("kind").Comment("totp"),
		field.String("secret").Sensitive().Comment("The TOTP secret (base32), stored as is: the server must read it to check codes."),
		field.Time("verified_at").Optional().Nillable().Comment("Set by the first valid code: the factor is active."),
		field.Int64("last_step").Default(0).Comment("The last TOTP time step accepted: a code is good once."),
	}
}

// Edges of AuthFactor.
func (AuthFactor) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("user", AuthUser.Type).Ref("factors").Field("user_id").Unique().Required(),
	}
}

// Indexes of AuthFactor.
func (AuthFactor) Indexes() []ent.Index {
	return []ent.Index{index.Fields("user_id")}
}

// AuthIdentity is an account at an OpenID Connect provider (Apple, Google,
// any issuer) that signs in to a user: the provider's name as configured
// and the token's "sub", unique together.
type AuthIdentity struct {
	ent.Schema
}

// Annotations of AuthIdentity.
func (AuthIdentity) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Annotation{Table: "kiln_identities"}, entgql.Skip(entgql.SkipAll)}
}

// Fields of AuthIdentity.
func (AuthIdentity) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("id", uuid.UUID{}).Default(uuid.New).Immutable(),
		field.Time("created_at").Default(time.Now).Immutable(),
		field.Time("updated_at").Default(time.Now).UpdateDefault(time.Now),
		field.UUID("user_id", uuid.UUID{}),
		field.String("provider").Comment("The provider's configured name (apple, google, or a KILN_AUTH_OIDC_PROVIDERS name)."),
		field.String("subject").Comment("The ID token's sub: the account's stable id at the provider."),
		field.String("email").Optional().Nillable().Comment("Lower-cased address the provider asserted at the last sign-in."),
		field.Bool("email_verified").Default(false).Comment("Whether the provider asserted the email verified."),
	}
}

// Edges of AuthIdentity.
func (AuthIdentity) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("user", AuthUser.Type).Ref("identities").Field("user_id").Unique().Required(),
	}
}

// Indexes of AuthIdentity.
func (AuthIdentity) Indexes() []ent.Index {
	return []ent.Index{index.Fields("provider", "subject").Unique(), index.Fields("user_id")}
}

// AuthSession is one refresh token. Tokens of one sign-in share a family;
// each refresh rotates to a new token whose parent is the old one.
type AuthSession struct {
	ent.Schema
}

// Annotations of AuthSession.
func (AuthSession) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Annotation{Table: "kiln_sessions"}, entgql.Skip(entgql.SkipAll)}
}

// Fields of AuthSession.
func (AuthSession) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("id", uuid.UUID{}).Default(uuid.New).Immutable(),
		field.Time("created_at").Default(time.Now).Immutable(),
		field.UUID("user_id", uuid.UUID{}),
		field.UUID("family_id", uuid.UUID{}),
		field.String("token_hash").Unique().Sensitive().Comment("SHA-256 of the opaque refresh token."),
		field.String("parent_hash").Optional().Sensitive(),
		field.Time("expires_at"),
		field.Time("rotated_at").Optional().Nillable(),
		field.Time("revoked_at").Optional().Nillable(),
		field.String("user_agent").Optional(),
		field.Int("aal").Default(1).Comment("Authenticator assurance level of the sign-in that started the family: 1, or 2 after a second factor; its access tokens carry it (aal1, aal2)."),
	}
}

// Edges of AuthSession.
func (AuthSession) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("user", AuthUser.Type).Ref("sessions").Field("user_id").Unique().Required(),
	}
}

// Indexes of AuthSession.
func (AuthSession) Indexes() []ent.Index {
	return []ent.Index{index.Fields("family_id")}
}

// AuthRole assigns a role to a user.
type AuthRole struct {
	ent.Schema
}

// Annotations of AuthRole.
func (AuthRole) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Annotation{Table: "kiln_roles"}, entgql.Skip(entgql.SkipAll)}
}

// Fields of AuthRole.
func (AuthRole) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("id", uuid.UUID{}).Default(uuid.New).Immutable(),
		field.Time("created_at").Default(time.Now).Immutable(),
		field.UUID("user_id", uuid.UUID{}),
		field.String("role"),
	}
}

// Edges of AuthRole.
func (AuthRole) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("user", AuthUser.Type).Ref("roles").Field("user_id").Unique().Required(),
	}
}

// Indexes of AuthRole.
func (AuthRole) Indexes() []ent.Index {
	return []ent.Index{index.Fields("user_id", "role").Unique()}
}

// AuthToken is a single-use token: a password reset sent by email, an MFA
// challenge, a recovery code.
type AuthToken struct {
	ent.Schema
}

// Annotations of AuthToken.
func (AuthToken) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Annotation{Table: "kiln_tokens"}, entgql.Skip(entgql.SkipAll)}
}

// Fields of AuthToken.
func (AuthToken) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("id", uuid.UUID{}).Default(uuid.New).Immutable(),
		field.Time("created_at").Default(time.Now).Immutable(),
		field.UUID("user_id", uuid.UUID{}),
		field.String("kind"),
		field.String("token_hash").Unique().Sensitive(),
		field.Time("expires_at"),
		field.Time("used_at").Optional().Nillable(),
		field.Int("attempts").Default(0).Comment("Wrong codes tried against it (MFA challenges)."),
	}
}

// Edges of AuthToken.
func (AuthToken) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("user", AuthUser.Type).Ref("tokens").Field("user_id").Unique().Required(),
	}
}

// AuthEmailCode is a passwordless sign-in code mailed to an address, with
// or without an account (signing in with it creates one).
type AuthEmailCode struct {
	ent.Schema
}

// Annotations of AuthEmailCode.
func (AuthEmailCode) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Annotation{Table: "kiln_email_codes"}, entgql.Skip(entgql.SkipAll)}
}

// Fields of AuthEmailCode.
func (AuthEmailCode) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("id", uuid.UUID{}).Default(uuid.New).Immutable(),
		field.Time("created_at").Default(time.Now).Immutable(),
		field.String("email").Comment("Lower-cased address the code was mailed to."),
		field.String("code_hash").Sensitive().Comment("SHA-256 of the address and the 6-digit code."),
		field.Time("expires_at"),
		field.Time("used_at").Optional().Nillable(),
		field.Int("attempts").Default(0).Comment("Wrong codes tried against it."),
	}
}

// Indexes of AuthEmailCode.
func (AuthEmailCode) Indexes() []ent.Index {
	return []ent.Index{index.Fields("email"), index.Fields("expires_at")}
}

// AuthFlow is one step of a browser redirect sign-in: a "state" row is
// an authorization request sent to a provider (its state, PKCE verifier
// and nonce, kept here and never in the browser); an "exchange" row is the
// one-time code the callback hands the app, holding what the provider's
// ID token asserted until the app exchanges it. Both are single use and
// short-lived.
type AuthFlow struct {
	ent.Schema
}

// Annotations of AuthFlow.
func (AuthFlow) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Annotation{Table: "kiln_auth_flows"}, entgql.Skip(entgql.SkipAll)}
}

// Fields of AuthFlow.
func (AuthFlow) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("id", uuid.UUID{}).Default(uuid.New).Immutable(),
		field.Time("created_at").Default(time.Now).Immutable(),
		field.String("kind").Comment("state (an authorization request) or exchange (a code for the app)."),
		field.String("token_hash").Unique().Sensitive().Comment("SHA-256 of the state or of the exchange code."),
		field.String("provider"),
		field.String("redirect_uri").Comment("The app's allow-listed redirect URI."),
		field.String("code_verifier").Optional().Sensitive().Comment("state: the PKCE verifier sent to the provider's token endpoint."),
		field.String("nonce").Optional().Sensitive().Comment("state: the nonce the ID token must carry."),
		field.String("app_challenge").Optional().Comment("The app's own PKCE S256 challenge, when it sent one: the exchange needs its verifier."),
		field.String("subject").Optional().Comment("exchange: the ID token's sub."),
		field.String("email").Optional().Comment("exchange: the lower-cased email the ID token asserted, or empty."),
		field.Bool("email_verified").Default(false).Comment("exchange: whether the provider asserted the email verified."),
		field.Time("expires_at"),
		field.Time("used_at").Optional().Nillable(),
	}
}

// Indexes of AuthFlow.
func (AuthFlow) Indexes() []ent.Index {
	return []ent.Index{index.Fields("expires_at")}
}

// IdempotencyKey remembers the response to a request sent with an
// Idempotency-Key header, so that retries get the same answer.
type IdempotencyKey struct {
	ent.Schema
}

// Annotations of IdempotencyKey.
func (IdempotencyKey) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Annotation{Table: "kiln_idempotency_keys"}, entgql.Skip(entgql.SkipAll)}
}

// Fields of IdempotencyKey.
func (IdempotencyKey) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("id", uuid.UUID{}).Default(uuid.New).Immutable(),
		field.Time("created_at").Default(time.Now).Immutable(),
		field.String("scope").Comment("Who sent it: a user id, or anonymous."),
		field.String("key"),
		field.String("request_hash").Comment("SHA-256 of the request body."),
		field.Bool("done").Default(false),
		field.Int("status").Default(0),
		field.Bytes("response").Optional(),
	}
}

// Indexes of IdempotencyKey.
func (IdempotencyKey) Indexes() []ent.Index {
	return []ent.Index{index.Fields("scope", "key").Unique(), index.Fields("created_at")}
}
