package schema

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// cacheFormat changes whenever the cached form changes, or the checks of
// a single file do (2: the pre-scan and the credential checks), so that a
// result cached by an older metalsync is not trusted.
const cacheFormat = "metalsync-schema-cache/3" // 3: diagnostics read "want X, got Y"

// cacheFile is the on-disk form of a Loader's memory: every file's result
// by path and content hash, valid only for the schema it was made with.
type cacheFile struct {
	Format  string       `json:"format"`
	Schema  string       `json:"schema"` // hash of the embedded CUE source
	Entries []cacheEntry `json:"entries"`
}

type cacheEntry struct {
	Path  string          `json:"path"`
	Sum   string          `json:"sum"`
	Kind  string          `json:"kind,omitempty"`
	Name  string          `json:"name,omitempty"`
	Value json.RawMessage `json:"value,omitempty"` // nil when the file had errors
	Diags Diagnostics     `json:"diags,omitempty"`
}

func schemaHash() string {
	h := sha256.Sum256(append([]byte(cacheFormat+"\n"), schemaSource...))
	return hex.EncodeToString(h[:])
}

// SaveCache writes what the loader remembers to path (atomically), so that
// a later process can start from it with LoadCache.
func (l *Loader) SaveCache(path string) error {
	l.mu.Lock()
	prev := l.prev
	l.mu.Unlock()
	cf := cacheFile{Format: cacheFormat, Schema: schemaHash(), Entries: make([]cacheEntry, 0, len(prev))}
	for k, r := range prev {
		e := cacheEntry{Path: k.path, Sum: hex.EncodeToString(k.sum[:]), Kind: r.kind, Name: r.name, Diags: r.diags}
		if r.value != nil {
			b, err := json.Marshal(r.value)
			if err != nil {
				return fmt.Errorf("schema cache: %s: %w", k.path, err)
			}
			e.Value = b
		}
		cf.Entries = append(cf.Entries, e)
	}
	b, err := json.Marshal(cf)
	if err != nil {
		return fmt.Errorf("schema cache: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("schema cache: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".cache-*")
	if err != nil {
		return fmt.Errorf("schema cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("schema cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("schema cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("schema cache: %w", err)
	}
	return nil
}

// LoadCache restores what a loader saved with SaveCache. A missing cache,
// one made by another schema, or a damaged one is no error: the loader
// then starts empty and validates everything.
func (l *Loader) LoadCache(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("schema cache: %w", err)
	}
	var cf cacheFile
	if json.Unmarshal(b, &cf) != nil || cf.Format != cacheFormat || cf.Schema != schemaHash() {
		return nil
	}
	prev := make(map[fileKey]result, len(cf.Entries))
	for _, e := range cf.Entries {
		sum, err := hex.DecodeString(e.Sum)
		if err != nil || len(sum) != sha256.Size {
			return nil
		}
		r := result{path: e.Path, kind: e.Kind, name: e.Name, diags: e.Diags}
		if e.Value != nil {
			v := newOfKind(e.Kind, Source{File: e.Path, Line: 1})
			if v == nil || json.Unmarshal(e.Value, v) != nil {
				return nil
			}
			r.value = v
		}
		var key fileKey
		key.path = e.Path
		copy(key.sum[:], sum)
		prev[key] = r
	}
	l.mu.Lock()
	l.prev = prev
	l.mu.Unlock()
	return nil
}

// newOfKind returns a new, empty resource of kind with its source set.
func newOfKind(kind string, src Source) any {
	switch kind {
	case KindNode:
		return &Node{Source: src}
	case KindOwner:
		return &Owner{Source: src}
	case KindDeployTemplate:
		return &DeployTemplate{Source: src}
	case KindSite:
		return &Site{Source: src}
	case KindNodeStatus:
		return &NodeStatus{Source: src}
	}
	return nil
}
