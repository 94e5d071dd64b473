package sdl

import (
	"fmt"
	"sort"
	"strings"

	"github.com/agnivade/levenshtein"
	"github.com/vektah/gqlparser/v2/ast"
)

// Error is one schema problem at a position.
type Error struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Errors is every problem found in a schema, sorted by position.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es Errors) sort() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

type reporter struct{ errs Errors }

func (r *reporter) at(pos *ast.Position, format string, args ...any) {
	e := &Error{Msg: oneLine(fmt.Sprintf(format, args...))}
	if pos != nil {
		e.Line, e.Col = pos.Line, pos.Column
		if pos.Src != nil {
			e.File = pos.Src.Name
			e.Line, e.Col = fixPos(pos.Src.Input, e.Line, e.Col)
		}
	}
	r.errs = append(r.errs, e)
}

// oneLine escapes line breaks that messages quote from the schema (string
// arguments, regexps), so every error stays one file:line:col: line.
var oneLine = strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace

// fixPos corrects the position gqlparser gives a token that spans lines (a
// block string): the line it ends on and a column < 1, counted back from
// that line's start. It returns the line and column where the token starts.
func fixPos(src string, line, col int) (int, int) {
	if col >= 1 {
		return line, col
	}
	starts := []int{0} // rune offset of each line; \n, \r and \r\n end a line
	n, prevCR := 0, false
	for _, r := range src {
		n++
		switch {
		case r == '\n' && prevCR:
			starts[len(starts)-1] = n
		case r == '\n' || r == '\r':
			starts = append(starts, n)
		}
		prevCR = r == '\r'
	}
	if line < 1 || line > len(starts) {
		return max(line, 1), 1
	}
	off := max(starts[line-1]+col-1, 0)
	i := sort.Search(len(starts), func(i int) bool { return starts[i] > off }) - 1
	return i + 1, off - starts[i] + 1
}

// suggest returns "; did you mean X?" for the closest candidate, or "".
func suggest(name string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if strings.EqualFold(c, name) {
			return fmt.Sprintf("; did you mean %s?", c)
		}
		d := levenshtein.ComputeDistance(strings.ToLower(name), strings.ToLower(c))
		if d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	limit := len(name) / 3
	if limit < 2 {
		limit = 2
	}
	if best == "" || bestD > limit {
		return ""
	}
	return fmt.Sprintf("; did you mean %s?", best)
}
