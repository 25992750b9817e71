package sipcall

import (
	"strings"
	"testing"
)

func TestInactiveAnswer(t *testing.T) {
	for _, tc := range []struct {
		name, offer string
		want        []string // lines the answer has, in order
		not         []string
		err         bool
	}{
		{
			name:  "first codec inactive",
			offer: calleeOffer,
			want:  []string{"v=0", "c=IN IP4 10.1.1.1", "t=0 0", "m=audio 9 RTP/AVP 8", "a=rtpmap:8 PCMA/8000", "a=inactive"},
			not:   []string{"PCMU", "telephone-event", "m=audio 0"},
		},
		{
			name:  "rejected stream stays rejected, video accepted",
			offer: "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nt=0 0\nm=audio 0 RTP/AVP 0\nm=video 5000 RTP/AVP 96\na=rtpmap:96 H264/90000\na=fmtp:96 profile-level-id=42e01f\n",
			want:  []string{"m=audio 0 RTP/AVP 0", "m=video 9 RTP/AVP 96", "a=rtpmap:96 H264/90000", "a=fmtp:96 profile-level-id=42e01f", "a=inactive"},
		},
		{name: "no media", offer: "v=0\r\ns=-\r\n", err: true},
		{name: "garbage", offer: "hello", err: true},
		{name: "short m-line", offer: "v=0\nm=audio 5000\n", err: true},
		{name: "bad port", offer: "v=0\nm=audio x RTP/AVP 0\n", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := inactiveAnswer([]byte(tc.offer), "10.1.1.1")
			if tc.err {
				if err == nil {
					t.Fatalf("answer %q, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s, at := string(got), 0
			for _, w := range tc.want {
				i := strings.Index(s[at:], w+"\r\n")
				if i < 0 {
					t.Fatalf("answer lacks %q after offset %d:\n%s", w, at, s)
				}
				at += i
			}
			for _, n := range tc.not {
				if strings.Contains(s, n) {
					t.Fatalf("answer has %q:\n%s", n, s)
				}
			}
		})
	}
}

// FuzzInactiveAnswer: any offer gives an error or an answer with one
// m-line per offered one, none of them newly rejected.
func FuzzInactiveAnswer(f *testing.F) {
	f.Add([]byte(calleeOffer))
	f.Add([]byte("v=0\nm=audio 0 RTP/AVP 0\nm=image 4000 udptl t38\n"))
	f.Fuzz(func(t *testing.T, offer []byte) {
		ans, err := inactiveAnswer(offer, "127.0.0.1")
		if err != nil {
			return
		}
		offered := strings.Count("\n"+strings.ReplaceAll(string(offer), "\r\n", "\n"), "\nm=")
		if got := strings.Count(string(ans), "\r\nm="); got != offered {
			t.Fatalf("%d m-lines answer %d offered:\n%s", got, offered, ans)
		}
	})
}
