package build

import "testing"

func TestParseDebianMirrorPrefersTheArchiveOverSecurity(t *testing.T) {
	cases := []struct {
		name, sources, want string
		ok                  bool
	}{
		{"deb822", "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n", "http://mirror.example/debian", true},
		{"security first", "URIs: http://archive.example/debian-security\nURIs: http://archive.example/debian\n", "http://archive.example/debian", true},
		{"security and archive on one line", "URIs: http://archive.example/debian-security http://archive.example/debian\n", "http://archive.example/debian", true},
		{"one-line", "deb [arch=amd64] http://ftp.example/debian bookworm main\n", "http://ftp.example/debian", true},
		{"commented", "# deb http://old.example/debian bookworm main\n", "", false},
		{"none", "", "", false},
	}
	for _, tc := range cases {
		got, ok := ParseDebianMirror(tc.sources)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: ParseDebianMirror = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestDebianMirrorNamesTheFilesWhenNoneIsConfigured(t *testing.T) {
	saved := AptSourceFiles
	t.Cleanup(func() { AptSourceFiles = saved })
	dir := t.TempDir()
	AptSourceFiles = []string{dir + "/*.sources"}
	_, err := DebianMirror()
	if err == nil {
		t.Fatal("no sources, and no error")
	}
	want := "no Debian archive in the host's apt sources (read: none; looked in " + dir + "/*.sources)"
	if got := err.Error(); len(got) < len(want) || got[:len(want)] != want {
		t.Errorf("error %q, want it to start with %q", got, want)
	}
}
