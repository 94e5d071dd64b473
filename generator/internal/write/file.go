// Package write writes generated files all or nothing: it formats Go, adds
// the generated-code header, compares with what is on disk, writes through
// temporary files and renames, and removes stale generated files.
package write

// File is one generated file, relative to the project root.
type File struct {
	Path    string
	Content []byte
}
