package webhook_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/repo/webhook"
)

const secret = "hunter2-webhook-secret"

func sign(key, body string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

func TestHandler(t *testing.T) {
	pushMain := `{"ref":"refs/heads/main","after":"abc"}`
	pushOther := `{"ref":"refs/heads/feature","after":"abc"}`
	pushTag := `{"ref":"refs/tags/v1","after":"abc"}`
	good := sign(secret, pushMain)
	bad := sign("wrong", pushMain)

	type want struct {
		Code      int
		Triggered bool
	}
	tests := []struct {
		name    string
		method  string
		headers map[string]string
		body    string
		want    want
	}{
		{"github push main", "", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + good}, pushMain, want{202, true}},
		{"github push other branch", "", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(secret, pushOther)}, pushOther, want{200, false}},
		{"github push tag", "", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(secret, pushTag)}, pushTag, want{200, false}},
		{"github ping", "", map[string]string{"X-GitHub-Event": "ping", "X-Hub-Signature-256": "sha256=" + sign(secret, `{"zen":"x"}`)}, `{"zen":"x"}`, want{200, false}},
		{"github pull request", "", map[string]string{"X-GitHub-Event": "pull_request", "X-Hub-Signature-256": "sha256=" + good}, pushMain, want{200, false}},
		{"github bad signature", "", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + bad}, pushMain, want{401, false}},
		{"github missing signature", "", map[string]string{"X-GitHub-Event": "push"}, pushMain, want{401, false}},
		{"github sha1 only", "", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature": "sha1=" + good[:40]}, pushMain, want{401, false}},
		{"github signature without prefix", "", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": good}, pushMain, want{401, false}},
		{"github not hex", "", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=zz"}, pushMain, want{401, false}},
		{"github unsigned ping", "", map[string]string{"X-GitHub-Event": "ping"}, `{}`, want{401, false}},
		{"github body tampered", "", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + good}, pushMain + " ", want{401, false}},
		{"gitlab push main", "", map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret}, pushMain, want{202, true}},
		{"gitlab push other", "", map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret}, pushOther, want{200, false}},
		{"gitlab tag push", "", map[string]string{"X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Token": secret}, pushTag, want{200, false}},
		{"gitlab bad token", "", map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "hunter2"}, pushMain, want{401, false}},
		{"gitlab missing token", "", map[string]string{"X-Gitlab-Event": "Push Hook"}, pushMain, want{401, false}},
		{"gitea push main", "", map[string]string{"X-Gitea-Event": "push", "X-Gitea-Signature": good, "X-GitHub-Event": "push"}, pushMain, want{202, true}},
		{"gitea push other", "", map[string]string{"X-Gitea-Event": "push", "X-Gitea-Signature": sign(secret, pushOther)}, pushOther, want{200, false}},
		{"gitea bad signature", "", map[string]string{"X-Gitea-Event": "push", "X-Gitea-Signature": bad}, pushMain, want{401, false}},
		// Gitea also sends GitHub's header: a good GitHub signature must not
		// stand in for a bad Gitea one.
		{"gitea missing signature", "", map[string]string{"X-Gitea-Event": "push", "X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + good}, pushMain, want{401, false}},
		{"forgejo push main", "", map[string]string{"X-Forgejo-Event": "push", "X-Forgejo-Signature": good}, pushMain, want{202, true}},
		{"no provider", "", map[string]string{"X-Hub-Signature-256": "sha256=" + good}, pushMain, want{400, false}},
		{"GET", "GET", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + good}, pushMain, want{405, false}},
		{"push without ref", "", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(secret, `{}`)}, `{}`, want{400, false}},
		{"push not json", "", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(secret, `nope`)}, `nope`, want{400, false}},
		{"body too large", "", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + good}, strings.Repeat("x", 2000), want{413, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			triggered := 0
			h, err := webhook.New(webhook.Config{
				Secret:  secret,
				Branch:  "main",
				Trigger: func() { triggered++ },
				MaxBody: 1024,
				Logger:  slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			})
			if err != nil {
				t.Fatal(err)
			}
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req := httptest.NewRequest(method, "/hooks/git", strings.NewReader(tc.body))
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			got := want{Code: rec.Code, Triggered: triggered > 0}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s\nbody: %s", diff, rec.Body)
			}
			if triggered > 1 {
				t.Errorf("triggered %d times", triggered)
			}
			if tc.want.Code == 401 && !strings.Contains(logs.String(), "webhook rejected") {
				t.Errorf("no log line for a rejected delivery: %q", logs.String())
			}
			for _, leak := range []string{secret, good, bad} {
				if strings.Contains(logs.String(), leak) || strings.Contains(rec.Body.String(), leak) {
					t.Errorf("secret or signature leaked: log %q, body %q", logs.String(), rec.Body)
				}
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  webhook.Config
		want string
	}{
		{"no secret", webhook.Config{Branch: "main", Trigger: func() {}}, "secret"},
		{"no branch", webhook.Config{Secret: "s", Trigger: func() {}}, "branch"},
		{"no trigger", webhook.Config{Secret: "s", Branch: "main"}, "trigger"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := webhook.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New() = %v, want an error about %s", err, tc.want)
			}
		})
	}
}
