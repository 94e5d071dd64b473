package files

import (
	"context"
	"encoding/hex"
	"mime"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"kiln/runtime/access"
)

// Field is the @file configuration of one File field.
type Field struct {
	Input   string // the input field: avatarID, attachmentIDs
	Accept  []string
	MaxSize int64
}

// mediaType is the lower-case type/subtype of a Content-Type value.
func mediaType(ct string) (string, bool) {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || strings.Count(mt, "/") != 1 || strings.HasPrefix(mt, "/") || strings.HasSuffix(mt, "/") {
		return "", false
	}
	return mt, true
}

// accepts reports whether a media type matches one of the patterns (none
// means any).
func accepts(patterns []string, mt string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if p == "*/*" || p == mt || strings.HasSuffix(p, "/*") && strings.HasPrefix(mt, strings.TrimSuffix(p, "*")) {
			return true
		}
	}
	return false
}

// sizeLimit is the largest file a field accepts.
func (s *Service) sizeLimit(f Field) int64 {
	if f.MaxSize > 0 && f.MaxSize < s.limits().MaxSize {
		return f.MaxSize
	}
	return s.limits().MaxSize
}

// checkUpload validates a declared upload against the schema's File fields:
// the type must be accepted by at least one, and the size must fit the
// largest limit among those.
func (s *Service) checkUpload(filename, contentType string, size int64, sha string) (string, error) {
	if filename == "" || utf8.RuneCountInString(filename) > 255 || !utf8.ValidString(filename) || strings.ContainsAny(filename, "/\\\x00") {
		return "", inputError("filename", ReasonFilename, "filename must be 1 to 255 characters, without / or \\")
	}
	for _, c := range filename {
		if c < 0x20 || c == 0x7f {
			return "", inputError("filename", ReasonFilename, "filename must not contain control characters")
		}
	}
	mt, ok := mediaType(contentType)
	for i := 0; i < len(contentType); i++ {
		if c := contentType[i]; c < 0x20 || c > 0x7e {
			ok = false // storage signs it as a header value: printable ASCII only
		}
	}
	if !ok || len(contentType) > 255 || strings.TrimSpace(contentType) != contentType {
		return "", inputError("contentType", ReasonContentType, "contentType %q is not a MIME type such as image/png", contentType)
	}
	if size <= 0 {
		return "", inputError("size", ReasonSize, "size must be a positive number of bytes")
	}
	var limit int64
	for _, f := range s.Schema.Fields {
		if accepts(f.Accept, mt) && s.sizeLimit(f) > limit {
			limit = s.sizeLimit(f)
		}
	}
	if limit == 0 {
		return "", inputError("contentType", ReasonContentType, "content type %s is not accepted by any File field (accepted: %s)", mt, strings.Join(s.acceptedTypes(), ", "))
	}
	if size > limit {
		return "", inputError("size", ReasonTooLarge, "the file is too large: %d bytes, at most %d for %s", size, limit, mt)
	}
	if sha != "" {
		if len(sha) != 64 {
			return "", inputError("sha256", ReasonChecksum, "sha256 must be 64 hexadecimal digits")
		}
		if _, err := hex.DecodeString(sha); err != nil {
			return "", inputError("sha256", ReasonChecksum, "sha256 must be 64 hexadecimal digits")
		}
	}
	return strings.ToLower(sha), nil
}

func (s *Service) acceptedTypes() []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range s.Schema.Fields {
		as := f.Accept
		if len(as) == 0 {
			as = []string{"*/*"}
		}
		for _, a := range as {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	sort.Strings(out)
	return out
}

// uploader returns the viewer who may upload: any signed-in user (anonymous
// accounts too) or an admin.
func uploader(ctx context.Context) (uuid.UUID, error) {
	v := access.From(ctx)
	if v == nil {
		return uuid.Nil, &access.UnauthenticatedError{Reason: "sign in to upload files"}
	}
	return v.ID, nil
}
