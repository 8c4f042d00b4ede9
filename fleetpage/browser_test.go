package fleetpage

import (
	"context"
	"io/fs"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	inventoryexample "metalsync.dev/metalsync/inventory-example"
	"metalsync.dev/metalsync/repo/githistory"
	"metalsync.dev/metalsync/repo/gitsource/gittest"
	"metalsync.dev/metalsync/schema"
)

// browser starts Debian's chromium, headless, with nothing that reaches
// beyond loopback. A missing chromium fails in CI and skips elsewhere.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is required in CI (Debian package chromium; make deps installs it)")
		}
		t.Skip("chromium not installed")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root in CI containers
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancel2)
	// The first call starts the browser, for as long as ctx lives: no
	// timeout on it; each step below has its own.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// artifactDir is where screenshots are kept: $METALSYNC_ARTIFACTS, else
// artifacts/ at the top of the repository (ignored by Git).
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("METALSYNC_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func shoot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(artifactDir(t), name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(p)
	t.Logf("screenshot: %s (%d bytes)", abs, len(png))
}

// exampleRepo commits the example inventory, then a person's change to
// r1-n02, in a real Git repository: the node page's history is read from
// it.
func exampleRepo(t *testing.T) string {
	r := gittest.NewRepo(t)
	files := map[string]string{}
	err := fs.WalkDir(inventoryexample.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(inventoryexample.FS, p)
		files[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	r.Commit("Ops Bot", "Example inventory", files)
	spec := "nodes/rack1/r1-n02.yaml"
	r.Commit("Alice Admin", "Redeploy r1-n02 with two more templates", map[string]string{
		spec: strings.Replace(files[spec], "deployTemplates: [bios-performance, raid1-os]", "deployTemplates: [bios-performance, raid1-os, raid6-data-firmware]", 1),
	})
	return r.Dir
}

// stepTimeout bounds one browser step; generous, for a loaded 2-core
// machine.
const stepTimeout = time.Minute

func run[T any](ctx context.Context, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	return chromedp.Run(ctx, a)
}

func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	v, err := run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		t.Fatalf("text of %s: %v", css, err)
	}
	return v
}

// TestBrowser drives the fleet page in a real browser: the grid and its
// colours, a click through to a node with its Git history, the page
// refreshing by itself, and a phone's screen. Screenshots are kept.
func TestBrowser(t *testing.T) {
	ctx := browser(t)
	f := exampleFleet(t)
	hist := githistory.Reader{Store: githistory.Dir(exampleRepo(t))}
	h, err := New(Config{Fleet: f, History: hist, Refresh: time.Hour, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	do(t, ctx, "fleet page", chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#legend")))
	if n := eval[int](t, ctx, `document.querySelectorAll('.tile').length`); n != 14 {
		t.Errorf("%d tiles, want 14", n)
	}
	colour := func(node string) string {
		return eval[string](t, ctx, `getComputedStyle(document.querySelector('[data-node="`+node+`"]')).borderLeftColor`)
	}
	active, busy, failed := colour("r1-n01"), colour("r1-n02"), colour("r1-n03")
	if active == failed || active == busy || busy == failed {
		t.Errorf("states are not told apart by colour: active %s, busy %s, failed %s", active, busy, failed)
	}
	if s := eval[string](t, ctx, `getComputedStyle(document.querySelector('[data-node="r2-n01"]')).boxShadow`); s == "" || s == "none" {
		t.Errorf("a faulted node has no outline: box-shadow %q", s)
	}
	shoot(t, ctx, "fleet-page.png")

	// Click through to a node: its steps, and Alice's change from Git.
	do(t, ctx, "node page", chromedp.Click(chromedp.CSS(`[data-node="r1-n02"]`)), chromedp.WaitVisible(chromedp.CSS("#summary")))
	if p := eval[string](t, ctx, `location.pathname`); p != "/nodes/r1-n02" {
		t.Errorf("clicked through to %s", p)
	}
	if cur := text(t, ctx, "#steps .current"); !strings.Contains(cur, "write_image") {
		t.Errorf("current step %q", cur)
	}
	history := text(t, ctx, ".change")
	for _, want := range []string{"Alice Admin", "Redeploy r1-n02", "spec.provision.deployTemplates", "raid6-data-firmware"} {
		if !strings.Contains(history, want) {
			t.Errorf("newest history row lacks %q: %q", want, history)
		}
	}
	shoot(t, ctx, "node-page.png")

	// The page refreshes by itself: a node reaching active shows without
	// anyone reloading.
	fast, err := New(Config{Fleet: f, History: hist, Refresh: time.Second, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	srv2 := httptest.NewServer(fast)
	defer srv2.Close()
	do(t, ctx, "refreshing page", chromedp.Navigate(srv2.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`[data-node="r1-n02"][data-class="busy"]`)))
	f.SetStatus("r1-n02", func(st *schema.NodeStatusBody) { st.ProvisionState, st.Target, st.Operation = "active", "", nil })
	do(t, ctx, "the page refreshing itself", chromedp.WaitVisible(chromedp.CSS(`[data-node="r1-n02"][data-class="active"]`)))

	// A phone: no sideways scrolling, several tiles a row, readable text.
	do(t, ctx, "phone",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#legend")))
	scrollW, innerW := eval[int](t, ctx, `document.documentElement.scrollWidth`), eval[int](t, ctx, `window.innerWidth`)
	if scrollW > innerW || innerW > 400 {
		t.Errorf("the page is %dpx wide in a %dpx phone viewport", scrollW, innerW)
	}
	perRow := eval[int](t, ctx, `(() => { const ts = [...document.querySelectorAll('#rack-rack1 .tile')]; return ts.filter(t => t.getBoundingClientRect().top === ts[0].getBoundingClientRect().top).length })()`)
	if perRow < 2 {
		t.Errorf("%d tiles a row on a phone, want at least 2", perRow)
	}
	if px := eval[float64](t, ctx, `parseFloat(getComputedStyle(document.querySelector('.tile b')).fontSize)`); px < 12 {
		t.Errorf("node names are %.1fpx on a phone", px)
	}
	shoot(t, ctx, "fleet-page-phone.png")

	do(t, ctx, "phone node page", chromedp.Navigate(srv.URL+"/nodes/r1-n03"), chromedp.WaitVisible(chromedp.CSS("#summary")))
	if w := eval[int](t, ctx, `document.documentElement.scrollWidth`); w > innerW {
		t.Errorf("the node page is %dpx wide in a %dpx phone viewport", w, innerW)
	}
	shoot(t, ctx, "node-page-phone.png")
}
