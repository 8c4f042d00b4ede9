package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"metalsync.dev/metalsync/agentapi"
)

// serveNext takes in a poll's results, then hands out the next command,
// holding the poll open up to min(poll.Wait, PollWait) for one.
func (s *Server) serveNext(w http.ResponseWriter, r *http.Request) {
	name := r.Header.Get(agentapi.HeaderNode)
	var p agentapi.Poll
	if !decode(w, r, s.limits.poll, &p) {
		return
	}
	if err := validPoll(p); err != nil {
		http.Error(w, "poll: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	n := s.nodeLocked(name)
	epoch := n.epoch
	first, restarted := n.observeLocked(p)
	s.mu.Unlock()
	switch {
	case restarted:
		s.log.Info("agent restarted; its earlier results are forgotten", "node", name, "boot", p.BootID, "version", p.Version)
	case first:
		s.log.Info("agent polled", "node", name, "boot", p.BootID, "version", p.Version, "results", len(p.Results))
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	if wait := min(time.Duration(p.Wait), s.pollWait); wait > 0 {
		go func() {
			_ = s.clock.Sleep(ctx, wait)
			cancel()
		}()
	} else {
		cancel() // answer at once
	}
	for {
		s.mu.Lock()
		revoked := n.epoch != epoch
		cmd, ok := n.nextLocked()
		changed := n.changed
		s.mu.Unlock()
		switch {
		case revoked:
			http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
			return
		case ok:
			s.log.Info("agent command handed out", "node", name, "command", cmd.ID, "step", cmd.Interface+"."+cmd.Step)
			writeJSON(w, cmd)
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
}

// serveResult takes in one result of the agent's current boot.
func (s *Server) serveResult(w http.ResponseWriter, r *http.Request) {
	name := r.Header.Get(agentapi.HeaderNode)
	var res agentapi.Result
	if !decode(w, r, s.limits.result, &res) {
		return
	}
	if err := validResult(res); err != nil {
		http.Error(w, "result: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	n := s.nodeLocked(name)
	n.recordLocked(res)
	n.broadcastLocked()
	s.mu.Unlock()
	s.log.Info("agent result", "node", name, "command", res.ID, "state", res.State, "rootDevice", res.RootDevice)
	w.WriteHeader(http.StatusNoContent)
}

// safeName is a node name fit for a file name.
var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$`)

// serveLog appends the agent's log lines to LogDir/<node>.log, with the
// node's token blanked out should the agent have logged it.
func (s *Server) serveLog(w http.ResponseWriter, r *http.Request) {
	name := r.Header.Get(agentapi.HeaderNode)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.limits.log))
	if err != nil {
		bodyError(w, err)
		return
	}
	s.mu.Lock()
	token := agentapi.Token(s.key, name, s.nodeLocked(name).epoch)
	s.mu.Unlock()
	body = bytes.ReplaceAll(body, []byte(token), []byte("[token]"))
	if len(body) > 0 && body[len(body)-1] != '\n' {
		body = append(body, '\n')
	}
	if s.logDir == "" || !safeName.MatchString(name) {
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(nil, int(s.limits.log)+1)
		for sc.Scan() {
			s.log.Debug("agent log", "node", name, "line", sc.Text())
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err := s.appendLog(name, body); err != nil {
		s.log.Error("agent log not written", "node", name, "err", err)
		http.Error(w, "log not written", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) appendLog(name string, b []byte) error {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	f, err := os.OpenFile(filepath.Join(s.logDir, name+".log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("agent log: %w", err)
	}
	// A looping agent must not fill the daemon's disk.
	if fi, err := f.Stat(); err == nil && fi.Size()+int64(len(b)) > maxLogFile {
		f.Close()
		s.log.Warn("agent log full; lines dropped", "node", name, "limit", maxLogFile)
		return nil
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("agent log: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("agent log: %w", err)
	}
	return nil
}

// serveImage serves an image a write_image command named for this node,
// with Range support so the agent can resume.
func (s *Server) serveImage(w http.ResponseWriter, r *http.Request) {
	name := r.Header.Get(agentapi.HeaderNode)
	sha := r.PathValue("sha")
	if b, err := hex.DecodeString(sha); err != nil || len(b) != 32 {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	handed := s.nodeLocked(name).images[sha]
	s.mu.Unlock()
	if !handed || s.images == nil {
		s.log.Warn("agent asked for an image not handed to it", "node", name, "sha256", sha)
		http.NotFound(w, r)
		return
	}
	f, err := s.images.Open(sha)
	if err != nil {
		s.log.Error("image not opened", "node", name, "sha256", sha, "err", err)
		http.Error(w, "image not available", http.StatusServiceUnavailable)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		s.log.Error("image not opened", "node", name, "sha256", sha, "err", err)
		http.Error(w, "image not available", http.StatusServiceUnavailable)
		return
	}
	// The ETag makes If-Range work, so a resumed download never mixes
	// two images' bytes.
	w.Header().Set("ETag", `"`+sha+`"`)
	w.Header().Set("Content-Type", "application/octet-stream")
	s.log.Info("agent image download", "node", name, "sha256", sha, "range", r.Header.Get("Range"))
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

// serveConfigDrive serves the node's config drive for its deployed OS.
func (s *Server) serveConfigDrive(w http.ResponseWriter, r *http.Request) {
	name := r.Header.Get(agentapi.HeaderNode)
	if s.configDrive == nil {
		http.NotFound(w, r)
		return
	}
	b, err := s.configDrive(r.Context(), name)
	if err != nil {
		s.log.Error("config drive not rendered", "node", name, "err", err)
		http.Error(w, "config drive not available", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
}

// decode reads one JSON value of at most limit bytes into v. Unknown
// fields are accepted: the agent image is built and configured apart from
// the daemon (spec.agent.image), so a newer agent may add optional fields
// an older daemon must ignore; every field the daemon relies on is
// checked after decoding instead.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	if err := dec.Decode(v); err != nil {
		bodyError(w, err)
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err == nil {
			err = errors.New("more than one JSON value")
		}
		bodyError(w, err)
		return false
	}
	return true
}

// bodyError answers a body that is too large or malformed.
func bodyError(w http.ResponseWriter, err error) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		http.Error(w, fmt.Sprintf("body larger than %d bytes", tooBig.Limit), http.StatusRequestEntityTooLarge)
		return
	}
	http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func validPoll(p agentapi.Poll) error {
	if p.BootID == "" || len(p.BootID) > maxBootID {
		return fmt.Errorf("bootID: want 1 to %d characters", maxBootID)
	}
	for i, r := range p.Results {
		if err := validResult(r); err != nil {
			return fmt.Errorf("results[%d]: %w", i, err)
		}
	}
	return nil
}

func validResult(r agentapi.Result) error {
	switch {
	case r.ID == "":
		return errors.New("id is empty")
	case !validState(r.State):
		return fmt.Errorf("state %q: want running, succeeded or failed", r.State)
	}
	return nil
}

// LogTail returns the end of node's agent log, at most limit bytes
// starting at a line, and whether earlier lines were left out; nil when
// the node has no log.
func (s *Server) LogTail(node string, limit int64) ([]byte, bool, error) {
	if s.logDir == "" || !safeName.MatchString(node) {
		return nil, false, nil
	}
	f, err := os.Open(filepath.Join(s.logDir, node+".log"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("agent log of %s: %w", node, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, fmt.Errorf("agent log of %s: %w", node, err)
	}
	off := max(fi.Size()-limit, 0)
	b := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, false, fmt.Errorf("agent log of %s: %w", node, err)
	}
	if off > 0 {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return b, off > 0, nil
}
