package server

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"metalsync.dev/metalsync/agentapi"
	"metalsync.dev/metalsync/internal/clock/clocktest"
)

// FuzzAgentBodies sends arbitrary bodies to the endpoints that decode
// what an agent posts: the server must answer, never panic, and never
// hand out a command that was not queued.
func FuzzAgentBodies(f *testing.F) {
	for _, seed := range []string{
		`{"bootID":"b1","version":"1","wait":"10s","results":[{"id":"c1","state":"running"}]}`,
		`{"bootID":"b1","results":[{"id":"c1","state":"failed","error":"x","inventory":{"cpus":2,"disks":[{"name":"/dev/vda"}]}}]}`,
		`{"id":"c1","state":"succeeded","rootDevice":"/dev/md127"}`,
		`{"bootID":"","wait":"-5s"}`,
		`{"bootID":"b1","wait":"9999999h"}`,
		`[]`, `null`, `{"bootID":1}`, "", "{\"bootID\":\"b1\"}\n{}",
	} {
		f.Add([]byte(seed), uint8(0))
		f.Add([]byte(seed), uint8(1))
		f.Add([]byte(seed), uint8(2))
	}
	srv, err := New(Config{Key: testKey, Clock: clocktest.New(time.Unix(0, 0)), LogDir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	srv.Allow("n1", "e1")
	token := agentapi.Token(testKey, "n1", "e1")
	paths := []string{agentapi.PathNext, agentapi.PathResult, agentapi.PathLog}
	f.Fuzz(func(t *testing.T, body []byte, which uint8) {
		req := httptest.NewRequest(http.MethodPost, paths[int(which)%len(paths)], bytes.NewReader(body))
		req.Header.Set(agentapi.HeaderNode, "n1")
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusNoContent, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	})
}
