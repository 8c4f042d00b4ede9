package redfish_test

import (
	"bytes"
	"time"
)

var fixedTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
