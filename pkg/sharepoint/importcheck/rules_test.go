package importcheck

import "testing"

// TestContentRules covers the size rules no test can upload into Azurite: a file over 15 GB
// fails naming it, and a package over 250 items or 250 MB is advised against (a warning).
func TestContentRules(t *testing.T) {
	tests := []struct {
		name   string
		blobs  []blob
		rule   string
		status Status
		blob   string
	}{
		{"16 GB file", []blob{{name: "big.vhd", size: 16 << 30, snapshot: true}}, "files up to 15 GB", Fail, "big.vhd"},
		{"15 GiB file", []blob{{name: "ok.vhd", size: 15 << 30, snapshot: true}}, "files up to 15 GB", Pass, ""},
		{"300 items", make([]blob, 300), "package under 250 MB or 250 items", Warn, ""},
		{"251 MB", []blob{{name: "a", size: 251 << 20, snapshot: true}}, "package under 250 MB or 250 items", Warn, ""},
		{"250 items of 1 MB", func() []blob {
			bs := make([]blob, 250)
			for i := range bs {
				bs[i] = blob{name: "f", size: 1 << 20, snapshot: true}
			}
			return bs
		}(), "package under 250 MB or 250 items", Pass, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			found := false
			for _, f := range contentRules(tt.blobs) {
				if f.Rule == tt.rule {
					found = true
					if f.Status != tt.status || f.Blob != tt.blob {
						t.Errorf("%+v, want %s naming %q", f, tt.status, tt.blob)
					}
				}
			}
			if !found {
				t.Errorf("no finding of %q", tt.rule)
			}
		})
	}
	if got := encryptedSize(102384); got != 102400 {
		t.Errorf("encryptedSize(102384) = %d, want 102400 (PKCS#7 adds a whole block to a whole number of blocks)", got)
	}
}
