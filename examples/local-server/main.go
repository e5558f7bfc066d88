// Fetch the main session's TIP and call identity_whoami over the local identity server.
// Usage: go run main.go [SOCKET]  (default: $IDENTITY_SOCKET or ~/.openclaw/plugins/identity/identity.sock)
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	socket := os.Getenv("IDENTITY_SOCKET")
	if len(os.Args) > 1 {
		socket = os.Args[1]
	}
	if socket == "" {
		home, _ := os.UserHomeDir()
		socket = filepath.Join(home, ".openclaw/plugins/identity/identity.sock")
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
	ok := show(client.Get("http://localhost/token"))
	ok = show(client.Post("http://localhost/tool/identity_whoami", "application/json",
		strings.NewReader(`{"params": {}, "session": ""}`))) && ok
	if !ok {
		os.Exit(1)
	}
}

func show(resp *http.Response, err error) bool {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, strings.TrimSpace(string(body)))
	return resp.StatusCode == http.StatusOK
}
