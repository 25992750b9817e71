package chaos

import (
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/server"
)

// The run's calling window is valid and closed exactly for its minute.
func TestClosedMinuteWindow(t *testing.T) {
	closed := time.Date(2026, 12, 6, 10, 42, 0, 0, time.UTC)
	w := closedMinute(closed)
	if w == nil {
		t.Fatal("no window")
	}
	if _, fe := server.CallingWindowFromPublic("acme", "", w); len(fe) > 0 {
		t.Fatalf("invalid window: %v", fe)
	}
	if w.Weekly[0].Close != "10:42" || w.Weekly[1].Open != "10:43" {
		t.Fatalf("spans %v", w.Weekly)
	}
	for _, m := range []time.Time{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 23, 59, 0, 0, time.UTC)} {
		if closedMinute(m) != nil {
			t.Errorf("%v: a window touching midnight", m)
		}
	}
}
