package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dataDir makes a data directory holding an owner connection string and,
// when withCA, the CA file.
func dataDir(t *testing.T, conn string, withCA bool) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ownerConnFile), []byte(conn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if withCA {
		if err := os.MkdirAll(filepath.Join(dir, "pki"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "pki", "ca.pem"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestResolvePrecedence(t *testing.T) {
	fileDir := dataDir(t, "conn-from-flag-dir", true)
	envDir := dataDir(t, "conn-from-env-dir", false)
	cwd := t.TempDir()
	if err := os.Mkdir(filepath.Join(cwd, defaultDataDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cwd, defaultDataDir, ownerConnFile), []byte("conn-from-cwd"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(cwd)

	tests := []struct {
		name     string
		flags    hubFlags
		env      map[string]string
		wantConn string
		wantCA   string
	}{
		{"flag beats everything", hubFlags{hub: "conn-flag", data: fileDir, ca: "ca-flag"},
			map[string]string{envHub: "conn-env", envCA: "ca-env", envData: envDir}, "conn-flag", "ca-flag"},
		{"env beats the data dir", hubFlags{data: fileDir},
			map[string]string{envHub: "conn-env", envCA: "ca-env"}, "conn-env", "ca-env"},
		{"--data dir", hubFlags{data: fileDir},
			map[string]string{envData: envDir}, "conn-from-flag-dir", filepath.Join(fileDir, "pki", "ca.pem")},
		{"FERRY_DATA dir, no CA there", hubFlags{},
			map[string]string{envData: envDir}, "conn-from-env-dir", ""},
		{"./ferry-data", hubFlags{}, nil, "conn-from-cwd", ""},
		{"--hub with the data dir's CA", hubFlags{hub: "conn-flag", data: fileDir}, nil,
			"conn-flag", filepath.Join(fileDir, "pki", "ca.pem")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.flags.resolve(func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if got.connString != tt.wantConn || got.caFile != tt.wantCA {
				t.Errorf("resolve = conn %q CA %q, want %q %q", got.connString, got.caFile, tt.wantConn, tt.wantCA)
			}
		})
	}
}

func TestResolveNothing(t *testing.T) {
	t.Chdir(t.TempDir())
	_, err := (&hubFlags{}).resolve(func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), noHubConnection) {
		t.Fatalf("resolve = %v, want %q", err, noHubConnection)
	}
	if exitCode(err) != exitFailure {
		t.Errorf("exit code %d", exitCode(err))
	}
}

func TestClientNamesTheSource(t *testing.T) {
	e := &env{getenv: func(k string) string {
		if k == envHub {
			return "HostName=h;DeviceId=d;SharedAccessKey=" + "c2VjcmV0"
		}
		return ""
	}}
	_, err := e.client(&hubFlags{data: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "(from FERRY_HUB)") || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Fatalf("client = %v, want an error naming FERRY_HUB without the key", err)
	}
}
