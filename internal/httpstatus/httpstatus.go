// Package httpstatus records the status code a handler answered with, for
// request logs and metrics.
package httpstatus

import "net/http"

// Recorder is a ResponseWriter that remembers the first status code sent:
// the one WriteHeader set, or 200 once a body is written without one.
type Recorder struct {
	http.ResponseWriter
	status int
}

// WriteHeader records code and passes it on.
func (w *Recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200 and passes b on.
func (w *Recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Status is the code sent, or 0 when nothing was (a hijacked or aborted
// connection).
func (w *Recorder) Status() int { return w.status }

// StatusOr200 is Status, with net/http's default for a handler that wrote
// nothing.
func (w *Recorder) StatusOr200() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Unwrap lets http.ResponseController reach Hijack and Flush.
func (w *Recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
