// Command scratchimage builds a container image without a Docker daemon or a registry: an
// empty ("scratch") image plus one layer holding the given files and a non-root /etc/passwd,
// written as a `docker save`-style archive that `docker load`, `kind load image-archive` and
// `ctr images import` accept. hack/image/build.sh uses it for the node and operator images.
//
// The output is reproducible: file times, the creation time and the layer order are fixed
// (SOURCE_DATE_EPOCH sets the times when given), so the same binaries give the same digest.
//
//	scratchimage -file bin/image/node/buytracker-node:/buytracker-node \
//	    -entrypoint /buytracker-node -tag buytracker/node:dev -o bin/image/node.tar
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
)

// repeated collects a flag given several times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "scratchimage:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("scratchimage", flag.ContinueOnError)
	var spec imageSpec
	var files, tags, labels, ports repeated
	fs.Var(&files, "file", "SRC:DST, a file to put in the image at DST (repeatable)")
	fs.Var(&tags, "tag", "image reference to name the image (repeatable, at least one)")
	fs.Var(&labels, "label", "KEY=VALUE image label (repeatable)")
	fs.Var(&ports, "expose", "PORT/PROTO to declare as exposed (repeatable)")
	fs.StringVar(&spec.Entrypoint, "entrypoint", "", "absolute path of the program to run")
	fs.StringVar(&spec.User, "user", "65532:65532", "UID:GID the container runs as")
	fs.StringVar(&spec.Platform, "platform", runtime.GOOS+"/"+runtime.GOARCH, "OS/ARCH of the files")
	output := fs.String("o", "", "archive to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *output == "" || len(tags) == 0 || len(files) == 0 {
		return errors.New("-o, -tag and -file are required")
	}
	for _, f := range files {
		src, dst, ok := strings.Cut(f, ":")
		if !ok || src == "" || !strings.HasPrefix(dst, "/") {
			return fmt.Errorf("-file %q: want SRC:/ABSOLUTE/DST", f)
		}
		spec.Files = append(spec.Files, fileSpec{Source: src, Target: dst})
	}
	spec.Labels = map[string]string{}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return fmt.Errorf("-label %q: want KEY=VALUE", l)
		}
		spec.Labels[k] = v
	}
	spec.ExposedPorts = ports
	spec.Tags = tags
	epoch, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	spec.Created = epoch
	return writeArchive(*output, spec)
}
