package gitstatus_test

import (
	"context"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"metalsync.dev/metalsync/repo/gitsource"
	"metalsync.dev/metalsync/repo/gitstatus"
	"metalsync.dev/metalsync/repo/webhook"
)

// Example shows how the daemon wires the Git side: a Source following the
// branch (fetch on a timer or a webhook), a Writer committing status back,
// and the webhook handler on the daemon's listener.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.Default()

	src, err := gitsource.New(gitsource.Config{
		URL:       "ssh://git@git.example.com/dc/inventory.git",
		Branch:    "main",
		Auth:      gitsource.Auth{SSHKeyFile: "/etc/metalsync/id_ed25519", KnownHostsFile: "/etc/metalsync/known_hosts"},
		IgnoreDir: "status", // the daemon's own status commits do not re-trigger a pass
		Logger:    log,
	})
	if err != nil {
		log.Error("git source", "err", err)
		return
	}
	committer, err := gitstatus.New(gitstatus.Config{
		Source: src,
		Dir:    "status", // site.Spec.Status.Directory; or Branch: site.Spec.Status.Branch
		Author: gitstatus.Identity{Name: "metalsync", Email: "metalsync@example.com"},
		Logger: log,
	})
	if err != nil {
		log.Error("status writer", "err", err)
		return
	}

	// One trigger channel, buffer 1, non-blocking sends: a webhook burst
	// coalesces into one fetch.
	trigger := make(chan struct{}, 1)
	kick := func() {
		select {
		case trigger <- struct{}{}:
		default:
		}
	}
	writer := gitstatus.NewWriter(committer, gitstatus.WriterConfig{
		Interval: 10 * time.Second,
		OnFlush: func(r gitstatus.Result, err error) {
			if err == nil && r.SpecMoved {
				kick() // a person pushed meanwhile: fetch and re-plan now
			}
		},
	})
	go func() { _ = writer.Run(ctx, 30*time.Second) }()

	hook, err := webhook.New(webhook.Config{Secret: "from-a-secret-file", Branch: "main", Trigger: kick, Logger: log})
	if err != nil {
		log.Error("webhook", "err", err)
		return
	}
	http.Handle("POST /hooks/git", hook)

	_ = src.Run(ctx, time.Minute, trigger, func(ctx context.Context, commit string, fsys fs.FS) {
		// inv, diags := schema.Load(fsys); plan; execute; then for each
		// node whose status changed:
		_ = writer.Update("r1-n01", []byte("status file bytes\n"), "available→active")
	})
}
