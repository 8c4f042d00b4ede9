package boot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrNoModule means a name is neither a module nor an alias of one.
var ErrNoModule = errors.New("no such module or alias")

// Loader loads modules with their dependencies, each at most once.
type Loader struct {
	mods *Modules
	// insert loads one module file (finit_module); tests record instead.
	insert func(path string) error
	log    *slog.Logger

	mu   sync.Mutex
	done map[string]error // guarded by mu: module name -> its load error
}

// NewLoader loads modules of mods into the kernel with finit_module.
func NewLoader(mods *Modules, log *slog.Logger) *Loader {
	return newLoader(mods, finit, log)
}

func newLoader(mods *Modules, insert func(string) error, log *slog.Logger) *Loader {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Loader{mods: mods, insert: insert, log: log, done: map[string]error{}}
}

// finit loads the module file at path. A module already loaded (EEXIST)
// is fine: the kernel's modprobe calls race with coldplug.
func finit(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	if !strings.HasSuffix(path, ".ko") {
		flags = unix.MODULE_INIT_COMPRESSED_FILE
	}
	if err := unix.FinitModule(int(f.Fd()), "", flags); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("finit_module %s: %w", filepath.Base(path), err)
	}
	return nil
}

// Load loads name (a module or an alias) with what it depends on. For an
// alias it loads every match and fails only when none loads.
func (l *Loader) Load(name string) error {
	mods := l.mods.Resolve(name)
	if len(mods) == 0 {
		return fmt.Errorf("module %s: %w", name, ErrNoModule)
	}
	var errs []error
	for _, m := range mods {
		if err := l.loadModule(m, nil); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == len(mods) {
		return errors.Join(errs...)
	}
	return nil
}

// loadModule loads the dependencies of name depth first, then name.
func (l *Loader) loadModule(name string, stack []string) error {
	l.mu.Lock()
	err, ok := l.done[name]
	l.mu.Unlock()
	if ok {
		return err
	}
	if l.mods.builtin[name] {
		return nil
	}
	m, known := l.mods.deps[name]
	switch {
	case !known:
		err = fmt.Errorf("module %s: %w", name, ErrNoModule)
	case len(stack) > 32 || containsStr(stack, name):
		err = fmt.Errorf("module %s: dependency loop through %s", name, strings.Join(stack, " "))
	default:
		for _, d := range m.Deps {
			if derr := l.loadModule(d, append(stack, name)); derr != nil {
				err = fmt.Errorf("module %s: %w", name, derr)
				break
			}
		}
		if err == nil {
			err = l.insert(filepath.Join(l.mods.Dir, m.Path))
		}
	}
	l.mu.Lock()
	l.done[name] = err
	l.mu.Unlock()
	if err == nil && known {
		l.log.Debug("module loaded", "module", name)
	}
	return err
}

func containsStr(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// LoadList loads each module or alias listed in the file at path, one per
// line ('#' starts a comment). A missing file is an empty list; a module
// that fails is logged and the rest still load.
func (l *Loader) LoadList(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("module list: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, _, _ := strings.Cut(sc.Text(), "#")
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		if err := l.Load(name); err != nil {
			l.log.Warn("module from the list not loaded", "module", name, "err", err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("module list %s: %w", path, err)
	}
	return nil
}

// Coldplug loads the drivers of the devices already present: it reads
// every modalias under sysDevices (/sys/devices) and loads what matches,
// then looks again, since new drivers add devices (virtio_pci makes the
// virtio devices appear), until a pass finds nothing new. It returns how
// many device aliases found a module.
func (l *Loader) Coldplug(ctx context.Context, sysDevices string) (int, error) {
	seen := map[string]bool{}
	matched := 0
	for pass := 0; pass < 8; pass++ {
		found, err := modaliases(sysDevices)
		if err != nil {
			return matched, err
		}
		fresh := 0
		for _, a := range found {
			if seen[a] {
				continue
			}
			seen[a] = true
			fresh++
			if err := ctx.Err(); err != nil {
				return matched, err
			}
			if len(l.mods.Resolve(a)) == 0 {
				continue
			}
			matched++
			if err := l.Load(a); err != nil {
				l.log.Warn("driver not loaded", "modalias", a, "err", err)
			}
		}
		if fresh == 0 {
			break
		}
	}
	return matched, nil
}

// modaliases reads the modalias files under dir, without following
// symlinks (sysfs is full of loops).
func modaliases(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			return nil // devices come and go while we walk
		}
		if d.Name() != "modalias" || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		if s := strings.TrimSpace(string(b)); s != "" {
			out = append(out, s)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("coldplug: %w", err)
	}
	return out, nil
}
