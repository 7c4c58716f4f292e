package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/promgate/promgate/internal/auth"
	"github.com/promgate/promgate/internal/server"
	"github.com/promgate/promgate/internal/webconfig"
)

// checkConfigFiles validates promgate.yml together with the web
// configuration file, if one is given: the web file as promtool check
// web-config does, the users of both as one set, and the files the
// configuration names (a jwks_file is parsed; a jwks_url is not fetched).
func checkConfigFiles(f flags, stdout, stderr io.Writer, logger *slog.Logger) int {
	f.configFile = f.checkFile
	_, cfg, err := loadFiles(f, logger)
	var warnings []string
	if err == nil {
		_, warnings, err = server.BuildAuth(cfg, auth.Runtime{Logger: logger})
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s FAILED:\n%v\n", f.checkFile, err)
		return 1
	}
	// Warnings do not fail the check, as in promtool check config: a
	// policy naming a removed user must not keep its credentials alive.
	for _, w := range warnings {
		fmt.Fprintf(stderr, "  WARNING: %s\n", w)
	}
	fmt.Fprintf(stdout, "%s SUCCESS\n", f.checkFile)
	if f.webConfig != "" {
		fmt.Fprintf(stdout, "%s SUCCESS\n", f.webConfig)
	}
	return 0
}

// checkWebConfigs validates web configuration files on their own.
func checkWebConfigs(files []string, stdout, stderr io.Writer, logger *slog.Logger) int {
	code := 0
	for _, file := range files {
		if _, err := webconfig.Load(file, logger); err != nil {
			fmt.Fprintf(stderr, "%s FAILED:\n%v\n", file, err)
			code = 1
			continue
		}
		fmt.Fprintf(stdout, "%s SUCCESS\n", file)
	}
	return code
}

// minTokenLength refuses tokens short enough to guess: a fast hash is only
// safe for long random tokens.
const minTokenLength = 16

// hashAPIToken prints the SHA-256 of the token on stdin, for api_tokens.
func hashAPIToken(stdin io.Reader, stdout, stderr io.Writer) int {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintf(stderr, "promgate: reading token: %v\n", err)
		return 1
	}
	token := strings.TrimRight(line, "\r\n")
	if len(token) < minTokenLength || strings.ContainsAny(token, " \t") {
		fmt.Fprintf(stderr, "promgate: a token must be a random string of at least %d characters without spaces (for example: openssl rand -hex 32)\n", minTokenLength)
		return 1
	}
	sum := sha256.Sum256([]byte(token))
	fmt.Fprintln(stdout, hex.EncodeToString(sum[:]))
	return 0
}
