package sdl

import (
	"regexp"
	"strconv"

	"github.com/vektah/gqlparser/v2/ast"

	"kiln/generator/internal/ir"
)

// mimePattern is a MIME type or a type wildcard: image/png, image/*, */*.
var mimePattern = regexp.MustCompile(`^(\*/\*|[a-z0-9][a-z0-9!#$&^_.+-]*/(\*|[a-z0-9][a-z0-9!#$&^_.+-]*))$`)

// sizePattern is a size such as 500KB, 5MB, 1GiB or 1024B.
var sizePattern = regexp.MustCompile(`^([0-9]+)(B|KB|MB|GB|KiB|MiB|GiB)$`)

var sizeUnits = map[string]int64{"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}

// ParseSize parses a @file(maxSize:) value ("5MB", "512KiB") into bytes;
// ok is false for anything else.
func ParseSize(v string) (int64, bool) {
	m := sizePattern.FindStringSubmatch(v)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n <= 0 || n > (1<<50)/sizeUnits[m[2]] {
		return 0, false
	}
	return n * sizeUnits[m[2]], true
}

// fileFieldDirectives are the directives a File field may carry.
var fileFieldDirectives = map[string]bool{"file": true, "auth": true, "readonly": true}

// buildFileField builds a File or [File!]! field with its @file options.
func (l *loader) buildFileField(m *ir.Model, fd *ast.FieldDefinition, list bool) {
	where := m.Name + "." + fd.Name
	f := &ir.FileField{Name: fd.Name, Description: fd.Description, List: list, Nullable: !fd.Type.NonNull}
	if list && (!fd.Type.NonNull || !fd.Type.Elem.NonNull) {
		l.at(fd.Type.Position, "a list of files is written [File!]! (%s)", where)
		return
	}
	if list {
		f.Nullable = false
	}
	for _, d := range fd.Directives {
		if _, known := directiveSpecs[d.Name]; known && !fileFieldDirectives[d.Name] {
			l.at(d.Position, "@%s does not apply to %s (a File field); File fields take @file, @auth and @readonly", d.Name, where)
		}
	}
	f.Readonly = fd.Directives.ForName("readonly") != nil
	if d := fd.Directives.ForName("file"); d != nil {
		if a := d.Arguments.ForName("accept"); a != nil {
			items := []*ast.Value{a.Value}
			if a.Value.Kind == ast.ListValue {
				items = nil
				for _, c := range a.Value.Children {
					items = append(items, c.Value)
				}
				if len(items) == 0 {
					l.at(a.Value.Position, "@file(accept:) is a non-empty list such as [\"image/*\"]; leave it out to accept every type")
				}
			}
			for _, v := range items {
				if v.Kind != ast.StringValue || !mimePattern.MatchString(v.Raw) {
					l.at(v.Position, "@file(accept:) has a malformed MIME pattern %s; write type/subtype in lower case, such as \"image/png\" or \"image/*\"", v.String())
					continue
				}
				f.Accept = append(f.Accept, v.Raw)
			}
		}
		if a := d.Arguments.ForName("maxSize"); a != nil {
			n, ok := int64(0), false
			if a.Value.Kind == ast.StringValue {
				n, ok = ParseSize(a.Value.Raw)
			}
			if !ok {
				l.at(a.Value.Position, "@file(maxSize:) must be a size such as \"500KB\", \"5MB\" or \"1GiB\" (units B, KB, MB, GB, KiB, MiB, GiB), got %s", a.Value.String())
			} else {
				f.MaxSize = n
			}
		}
	}
	l.fileDef[f] = fd
	m.Files = append(m.Files, f)
}
