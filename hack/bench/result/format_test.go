package result

import "testing"

func TestMillis(t *testing.T) {
	for v, want := range map[float64]string{0.1234: "0.12", 9.996: "10.00", 12.34: "12.3", 123.4: "123"} {
		if got := Millis(v); got != want {
			t.Errorf("Millis(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestDescribeErrors(t *testing.T) {
	if got := DescribeErrors(0, nil); got != "0" {
		t.Errorf("no errors: %q", got)
	}
	got := DescribeErrors(12, map[string]int64{"timeout": 2, "504": 10})
	if want := "12 (504: 10, timeout: 2)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
