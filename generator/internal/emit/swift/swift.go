// Package swift emits Kiln's Swift client SDK (clients/swift).
package swift

import (
	"kiln/generator/internal/emit/clientapi"
	"kiln/generator/internal/write"
)

// Dir is where the SDK is written, relative to the project root.
const Dir = "clients/swift"

// Files returns the SDK's files.
func Files(api *clientapi.API) []write.File { return nil }
