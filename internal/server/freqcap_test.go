package server

import (
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

func TestFreqCapFromPublic(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      *pb.FrequencyCap
		want    *fsmpb.FreqCap
		badPath string
	}{
		{"count", &pb.FrequencyCap{MaxAttempts: 3, Period: "24h"}, &fsmpb.FreqCap{Tenant: "acme", MaxAttempts: 3, PeriodMs: 86_400_000}, ""},
		{"both", &pb.FrequencyCap{MaxAttempts: 3, Period: "24h", MinGap: "1h"}, &fsmpb.FreqCap{Tenant: "acme", MaxAttempts: 3, PeriodMs: 86_400_000, MinGapMs: 3_600_000}, ""},
		{"gap only", &pb.FrequencyCap{MinGap: "90m"}, &fsmpb.FreqCap{Tenant: "acme", MinGapMs: 5_400_000}, ""},
		{"empty", &pb.FrequencyCap{}, nil, "cap"},
		{"count without period", &pb.FrequencyCap{MaxAttempts: 3}, nil, "cap.period"},
		{"period without count", &pb.FrequencyCap{Period: "24h"}, nil, "cap.max_attempts"},
		{"short period", &pb.FrequencyCap{MaxAttempts: 1, Period: "10s"}, nil, "cap.period"},
		{"long period", &pb.FrequencyCap{MaxAttempts: 1, Period: "721h"}, nil, "cap.period"},
		{"bad gap", &pb.FrequencyCap{MinGap: "soon"}, nil, "cap.min_gap"},
		{"too many", &pb.FrequencyCap{MaxAttempts: 1001, Period: "1h"}, nil, "cap.max_attempts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, fe := FreqCapFromPublic("acme", tc.in)
			if tc.badPath != "" {
				found := false
				for _, e := range fe {
					found = found || e.Field == tc.badPath
				}
				if !found {
					t.Fatalf("errors %v, want one on %s", fe, tc.badPath)
				}
				return
			}
			if len(fe) > 0 || !proto.Equal(got, tc.want) {
				t.Fatalf("got %v %v, want %v", got, fe, tc.want)
			}
			if back, fe := FreqCapFromPublic("acme", FreqCapToPublic(got)); len(fe) > 0 || !proto.Equal(back, got) {
				t.Fatalf("round trip: %v %v", back, fe)
			}
		})
	}
}
