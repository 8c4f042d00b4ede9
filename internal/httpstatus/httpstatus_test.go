package httpstatus

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRecorder(t *testing.T) {
	for _, tt := range []struct {
		name       string
		handler    func(w http.ResponseWriter)
		status, or int
	}{
		{"nothing written", func(http.ResponseWriter) {}, 0, 200},
		{"body only", func(w http.ResponseWriter) { w.Write([]byte("x")) }, 200, 200},
		{"explicit code", func(w http.ResponseWriter) { w.WriteHeader(404) }, 404, 404},
		{"first code wins", func(w http.ResponseWriter) { w.WriteHeader(401); w.WriteHeader(500) }, 401, 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &Recorder{ResponseWriter: httptest.NewRecorder()}
			tt.handler(rec)
			if rec.Status() != tt.status || rec.StatusOr200() != tt.or {
				t.Errorf("Status %d, StatusOr200 %d; want %d, %d", rec.Status(), rec.StatusOr200(), tt.status, tt.or)
			}
		})
	}
}
