package server

import (
	"slices"
	"testing"
)

func TestParseSuppressionFile(t *testing.T) {
	file := "phone,name\r\n+15550001,Ann\n# comment\n\n 15550002 \n\"+15550003\",\"x,y\"\n15550004"
	want := []uint64{15550001, 15550002, 15550003, 15550004}
	got, err := ParseSuppressionFile([]byte(file))
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("got %v, %v", got, err)
	}
	// Fed in pieces of every size, the result is the same.
	for size := 1; size < len(file); size++ {
		p := &numberParser{}
		for i := 0; i < len(file); i += size {
			if err := p.write([]byte(file[i:min(len(file), i+size)])); err != nil {
				t.Fatalf("size %d: %v", size, err)
			}
		}
		if err := p.end(); err != nil || !slices.Equal(p.nums, want) {
			t.Fatalf("size %d: %v %v", size, p.nums, err)
		}
	}
	for _, bad := range []string{"+1555\nabc\n", "1,2\n+\n", "12345678901234567890\n"} {
		if _, err := ParseSuppressionFile([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParseSuppressionFile(f *testing.F) {
	for _, s := range []string{"+15550001\n", "a,b\n1,2\n", "#x\n\n", "\"+1\",\"2\"\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		nums, err := ParseSuppressionFile(data)
		if err == nil && len(nums) > len(data) {
			t.Fatalf("%d numbers from %d bytes", len(nums), len(data))
		}
	})
}
