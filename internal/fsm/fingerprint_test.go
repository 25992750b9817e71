package fsm

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// fingerprintRef is Fingerprint as it was first written (a new message
// and buffer per record). Stored fingerprints decide idempotent replays
// across nodes and versions, so the reused-buffer forms must give the same
// bytes.
func fingerprintRef(r *fsmpb.Request) []byte {
	spec := &fsmpb.Request{
		Tenant: r.GetTenant(), Token: r.GetToken(), IvrProfile: r.GetIvrProfile(), Telnum: r.GetTelnum(),
		Ani: r.GetAni(), NotificationUrl: r.GetNotificationUrl(), CustomData: r.GetCustomData(), Cpd: r.GetCpd(),
		MaxAttempts: r.GetMaxAttempts(), TtlMs: r.GetTtlMs(), IdempotencyKey: r.GetIdempotencyKey(), TimeZone: r.GetTimeZone(),
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(spec)
	sum := sha256.Sum256(b)
	return sum[:]
}

// randomSpec sets each spec field, or leaves it zero, at random; status
// fields too, which a fingerprint ignores.
func randomSpec(rng *rand.Rand, i int) *fsmpb.Request {
	str := func(s string) string {
		if rng.IntN(3) == 0 {
			return ""
		}
		return fmt.Sprintf("%s-%d", s, rng.IntN(1000))
	}
	r := &fsmpb.Request{
		Id: fmt.Sprintf("id%d", i), Tenant: str("t"), Token: str("tok"), IvrProfile: str("p"), Telnum: str("+1555"),
		Ani: str("ani"), NotificationUrl: str("http://n"), IdempotencyKey: str("k"), TimeZone: str("Europe/Berlin"),
		MaxAttempts: uint32(rng.IntN(3)), TtlMs: int64(rng.IntN(3) * 1000), State: fsmpb.State(rng.IntN(4)),
	}
	for range rng.IntN(3) {
		r.CustomData = append(r.CustomData, &fsmpb.KeyValue{Key: str("k"), Value: str("v")})
	}
	if rng.IntN(2) == 0 {
		yes := rng.IntN(2) == 0
		r.Cpd = &fsmpb.Cpd{Record: &yes, Detect: str("machine")}
	}
	return r
}

func TestFingerprintsMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		recs := make([]*fsmpb.Request, 1+rng.IntN(40))
		for i := range recs {
			recs[i] = randomSpec(rng, i)
		}
		SetFingerprints(recs)
		for i, r := range recs {
			want := fingerprintRef(r)
			if !bytes.Equal(r.Fingerprint, want) || !bytes.Equal(Fingerprint(r), want) {
				t.Fatalf("round %d, record %d (%v): SetFingerprints %x, Fingerprint %x, want %x", round, i, r, r.Fingerprint, Fingerprint(r), want)
			}
			if cap(r.Fingerprint) != sha256.Size {
				t.Fatalf("record %d: fingerprint capacity %d: an append would write into the next one", i, cap(r.Fingerprint))
			}
		}
	}
}

func BenchmarkFingerprints(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	recs := make([]*fsmpb.Request, 100)
	for i := range recs {
		recs[i] = newReq(fmt.Sprintf("id%d", i), "t1", "p1", 3, 60_000)
		recs[i].CustomData = []*fsmpb.KeyValue{{Key: "account", Value: fmt.Sprint(rng.IntN(1e6))}}
	}
	// "each" is the first form: a message, a buffer and a sum per record.
	b.Run("each", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, r := range recs {
				r.Fingerprint = fingerprintRef(r)
			}
		}
	})
	b.Run("batch", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			SetFingerprints(recs)
		}
	})
}
