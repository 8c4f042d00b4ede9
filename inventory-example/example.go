// Package inventoryexample embeds the example inventory repository, so that
// `metalsync demo` runs on it from any directory.
package inventoryexample

import "embed"

// FS holds metalsync.yaml, nodes/, owners/ and templates/ of the example.
//
//go:embed metalsync.yaml nodes owners templates
var FS embed.FS
