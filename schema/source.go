package schema

// CUESource returns the embedded CUE schema every file is validated
// against (schema/cue/schema.cue), for `metalsync schema`.
func CUESource() []byte { return append([]byte(nil), schemaSource...) }
