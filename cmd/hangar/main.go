// Command hangar is the Hangar daemon, CLI and migration toolkit.
package main

import (
	"os"

	"github.com/hangar-dev/hangar/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
