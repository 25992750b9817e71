package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCallingWindowAndSuppressVerbs(t *testing.T) {
	addr := oneNode(t)
	out := mustRun(t, addr, "calling-window", "get", "--tenant", "acme")
	if !strings.Contains(out, "no calling window") {
		t.Fatalf("get before set:\n%s", out)
	}
	out = mustRun(t, addr, "calling-window", "set", "--tenant", "acme", "--preset", "us-tcpa", "--closed", "2026-12-25")
	if !strings.Contains(out, "mon") || !strings.Contains(out, "08:00-21:00") || !strings.Contains(out, "closed") {
		t.Fatalf("set:\n%s", out)
	}
	mustRun(t, addr, "calling-window", "set", "--tenant", "acme", "--profile", "sales", "--span", "weekdays=09:00-17:00")
	out = mustRun(t, addr, "calling-window", "get", "--tenant", "acme", "--profile", "sales")
	if !strings.Contains(out, "profile's window") || !strings.Contains(out, "fri") || strings.Contains(out, "sat") {
		t.Fatalf("profile get:\n%s", out)
	}
	if _, err := run(t, addr, "calling-window", "set", "--tenant", "acme", "--span", "weekdays=9-17"); err == nil {
		t.Fatal("bad span accepted")
	}
	if out, err := run(t, addr, "calling-window", "set", "--tenant", "acme", "--span", "weekdays=25:00-26:00"); err == nil || !strings.Contains(out+err.Error(), "window.weekly[0].open") {
		t.Fatalf("bad time: %v %s", err, out)
	}
	mustRun(t, addr, "calling-window", "delete", "--tenant", "acme", "--profile", "sales")

	file := filepath.Join(t.TempDir(), "dnc.csv")
	if err := os.WriteFile(file, []byte("number\n+15550001\n+15550002\n+15550003\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := mustRun(t, addr, "suppress", "load", "--tenant", "acme", file); !strings.Contains(out, "3 loaded") {
		t.Fatalf("load:\n%s", out)
	}
	mustRun(t, addr, "suppress", "add", "--tenant", "acme", "--expires-in", "24h", "+15550009")
	mustRun(t, addr, "suppress", "remove", "--tenant", "acme", "+15550002")
	if out := mustRun(t, addr, "suppress", "check", "--tenant", "acme", "+15550001"); !strings.Contains(out, "suppressed true (list of 3 numbers)") {
		t.Fatalf("check:\n%s", out)
	}
	if out := mustRun(t, addr, "suppress", "check", "--tenant", "acme", "+15550002"); !strings.Contains(out, "suppressed false") {
		t.Fatalf("check removed:\n%s", out)
	}
}

func TestFrequencyCapVerbs(t *testing.T) {
	addr := oneNode(t)
	if out := mustRun(t, addr, "frequency-cap", "get", "--tenant", "acme"); !strings.Contains(out, "no frequency cap") {
		t.Fatalf("get before set:\n%s", out)
	}
	out := mustRun(t, addr, "frequency-cap", "set", "--tenant", "acme", "--max", "3", "--period", "24h", "--min-gap", "90m")
	if !strings.Contains(out, "at most 3 attempts per number per 24h") || !strings.Contains(out, "at least 90m") {
		t.Fatalf("set:\n%s", out)
	}
	if out := mustRun(t, addr, "frequency-cap", "get", "--tenant", "acme", "--json"); !strings.Contains(out, `"max_attempts"`) || !strings.Contains(out, `"24h"`) {
		t.Fatalf("get json:\n%s", out)
	}
	if out, err := run(t, addr, "frequency-cap", "set", "--tenant", "acme", "--max", "3"); err == nil || !strings.Contains(out+err.Error(), "cap.period") {
		t.Fatalf("cap without period: %v %s", err, out)
	}
	mustRun(t, addr, "frequency-cap", "delete", "--tenant", "acme")
	if _, err := run(t, addr, "frequency-cap", "delete", "--tenant", "acme"); err == nil {
		t.Fatal("second delete succeeded")
	}
}
