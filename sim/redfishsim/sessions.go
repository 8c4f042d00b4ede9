package redfishsim

import (
	"net/http"
	"slices"
)

const sessionsPath = "/redfish/v1/SessionService/Sessions"

// sessionService serves /SessionService and its Sessions collection:
// POST logs in (X-Auth-Token + Location), DELETE logs out.
func (c *call) sessionService(segs []string) {
	v := c.v
	switch len(segs) {
	case 0:
		c.get(doc{
			"@odata.id":      "/redfish/v1/SessionService",
			"@odata.type":    "#SessionService.v1_2_0.SessionService",
			"Id":             "SessionService",
			"Name":           "Session Service",
			"Status":         statusOK(),
			"ServiceEnabled": true,
			"SessionTimeout": int(v.srv.cfg.SessionTimeout.Seconds()),
			"Sessions":       ref(sessionsPath),
		}, nil)
	case 1:
		if segs[0] != "Sessions" {
			c.notFound()
			return
		}
		if !c.method(http.MethodGet, http.MethodPost) {
			return
		}
		if c.r.Method == http.MethodPost {
			c.login()
			return
		}
		v.mu.Lock()
		var ids []string
		for id := range v.byID {
			ids = append(ids, sessionsPath+"/"+id)
		}
		v.mu.Unlock()
		slices.Sort(ids)
		c.ok(collection(sessionsPath, "SessionCollection", "Session Collection", ids), nil)
	case 2:
		if segs[0] != "Sessions" {
			c.notFound()
			return
		}
		if !c.method(http.MethodGet, http.MethodDelete) {
			return
		}
		v.mu.Lock()
		s, ok := v.byID[segs[1]]
		if ok && c.r.Method == http.MethodDelete {
			v.dropLocked(s)
		}
		v.mu.Unlock()
		switch {
		case !ok:
			c.notFound()
		case c.r.Method == http.MethodDelete:
			c.w.WriteHeader(http.StatusNoContent)
		default:
			c.ok(sessionDoc(s), nil)
		}
	default:
		c.notFound()
	}
}

func sessionDoc(s *session) doc {
	return doc{
		"@odata.id":   sessionsPath + "/" + s.id,
		"@odata.type": "#Session.v1_7_0.Session",
		"Id":          s.id,
		"Name":        "User Session",
		"UserName":    s.user,
	}
}

func (c *call) login() {
	var req struct {
		UserName, Password string
	}
	if !c.decode(&req) {
		return
	}
	if req.UserName == "" {
		writeError(c.w, http.StatusBadRequest, msgPropertyMissing, "the property UserName is required to create a session")
		return
	}
	if !c.v.srv.credentialsOK(req.UserName, req.Password) {
		writeError(c.w, http.StatusUnauthorized, msgNoValidSession, "invalid username or password")
		return
	}
	v := c.v
	v.mu.Lock()
	for _, s := range v.sessions { // expired sessions free their slots
		if c.now.Sub(s.lastUsed) > v.srv.cfg.SessionTimeout || v.srv.expiredLocked(s, c.now) {
			v.dropLocked(s)
		}
	}
	if v.maxSessions > 0 && len(v.sessions) >= v.maxSessions {
		v.mu.Unlock()
		c.w.Header().Set("Retry-After", "30")
		writeError(c.w, http.StatusServiceUnavailable, msgSessionLimit, "the session establishment failed because the number of simultaneous sessions (%d) has been exceeded", v.maxSessions)
		return
	}
	s := &session{id: newToken(8), token: newToken(16), user: req.UserName, created: c.now, lastUsed: c.now}
	v.sessions[s.token] = s
	v.byID[s.id] = s
	v.mu.Unlock()
	c.w.Header().Set("X-Auth-Token", s.token)
	c.w.Header().Set("Location", sessionsPath+"/"+s.id)
	writeJSON(c.w, http.StatusCreated, sessionDoc(s), "")
}

// Sessions returns how many sessions are open on the shared listener
// (id "") or on system id's own BMC view.
func (s *Server) Sessions(id string) int {
	v := s.shared
	if id != "" {
		v = s.bmcs[id]
		if v == nil {
			return 0
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.sessions)
}
