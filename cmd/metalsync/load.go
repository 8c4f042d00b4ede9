package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"metalsync.dev/metalsync/schema"
)

// loadInventory loads the repository in dir through the validation cache:
// files whose content is unchanged since the last run on this directory are
// not validated again (CUE validation dominates `validate` and `plan` on
// large fleets). METALSYNC_CACHE=off disables the cache;
// METALSYNC_CACHE_DIR moves it (default: the user's cache directory).
func loadInventory(dir string, env *Env) (*schema.Inventory, schema.Diagnostics) {
	path := cachePath(dir, env)
	var l schema.Loader
	if path != "" {
		if err := l.LoadCache(path); err != nil {
			fmt.Fprintf(env.Err, "metalsync: %v (validating everything)\n", err)
		}
	}
	inv, diags := l.LoadDir(dir)
	if path != "" && l.Dirty() {
		if err := l.SaveCache(path); err != nil {
			fmt.Fprintf(env.Err, "metalsync: %v (next run validates everything again)\n", err)
		}
	}
	return inv, diags
}

// cachePath is the cache file of dir, or "" when caching is off or there
// is no cache directory.
func cachePath(dir string, env *Env) string {
	if env.Getenv("METALSYNC_CACHE") == "off" {
		return ""
	}
	base := env.Getenv("METALSYNC_CACHE_DIR")
	if base == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		base = filepath.Join(d, "metalsync")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	h := sha256.Sum256([]byte(abs))
	return filepath.Join(base, "schema-"+hex.EncodeToString(h[:8])+".json")
}
