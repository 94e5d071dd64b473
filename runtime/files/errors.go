package files

import "fmt"

// Error is a refused file operation. Kind is its extensions.code
// (BAD_USER_INPUT for the upload itself, VALIDATION when attaching to a
// field), Field the input field, Reason a stable machine-readable cause.
type Error struct {
	Kind, Field, Reason, Message string
}

func (e *Error) Error() string { return e.Message }

// Code is extensions.code.
func (e *Error) Code() string { return e.Kind }

// Extensions are added to the GraphQL error.
func (e *Error) Extensions() map[string]any {
	m := map[string]any{"code": e.Kind, "reason": e.Reason}
	if e.Field != "" {
		m["field"] = e.Field
	}
	return m
}

// Reasons in Error.
const (
	ReasonContentType = "UNSUPPORTED_CONTENT_TYPE"
	ReasonTooLarge    = "TOO_LARGE"
	ReasonChecksum    = "BAD_CHECKSUM"
	ReasonFilename    = "BAD_FILENAME"
	ReasonSize        = "BAD_SIZE"
	ReasonExpired     = "UPLOAD_EXPIRED"
	ReasonNotUploaded = "NOT_UPLOADED"
	ReasonMismatch    = "UPLOAD_MISMATCH"
)

// CodeQuotaExceeded is extensions.code of a QuotaError.
const CodeQuotaExceeded = "QUOTA_EXCEEDED"

// QuotaError refuses an upload that would take its uploader over a quota
// (Limits): Quota is "pending" or "storage", Limit the quota, Used the
// bytes already counted against it and Requested the size of the upload.
type QuotaError struct {
	Quota                  string
	Limit, Used, Requested int64
}

func (e *QuotaError) Error() string {
	if e.Quota == "pending" {
		return fmt.Sprintf("upload quota exceeded: uploads in progress already hold %d of %d bytes and this one needs %d; complete them (or let them expire) first", e.Used, e.Limit, e.Requested)
	}
	return fmt.Sprintf("storage quota exceeded: your files already hold %d of %d bytes and this one needs %d; remove files you no longer need first", e.Used, e.Limit, e.Requested)
}

// Code is extensions.code.
func (e *QuotaError) Code() string { return CodeQuotaExceeded }

// Extensions are added to the GraphQL error.
func (e *QuotaError) Extensions() map[string]any {
	return map[string]any{"code": CodeQuotaExceeded, "quota": e.Quota, "limit": e.Limit, "used": e.Used, "requested": e.Requested}
}

func inputError(field, reason, format string, args ...any) *Error {
	return &Error{Kind: "BAD_USER_INPUT", Field: field, Reason: reason, Message: fmt.Sprintf(format, args...)}
}
