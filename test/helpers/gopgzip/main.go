// Reference encoder for airpack's pgzip tests: gzip stdin to stdout with
// github.com/klauspost/pgzip exactly as containers/image does (NewWriterLevel,
// default header: ModTime zero, OS 255).
//
// usage: gopgzip LEVEL [CHUNK [BLOCKSIZE]]
//
//	CHUNK      size of each Write call (0 or absent: 32 KiB, like io.Copy)
//	BLOCKSIZE  if > 0, call SetConcurrency(BLOCKSIZE, 4) first
package main

import (
	"bufio"
	"io"
	"os"
	"strconv"

	"github.com/klauspost/pgzip"
)

func main() {
	level, err := strconv.Atoi(os.Args[1])
	if err != nil {
		panic(err)
	}
	chunk := 32 << 10
	if len(os.Args) > 2 {
		if c, _ := strconv.Atoi(os.Args[2]); c > 0 {
			chunk = c
		}
	}
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	zw, err := pgzip.NewWriterLevel(out, level)
	if err != nil {
		panic(err)
	}
	if len(os.Args) > 3 {
		if bs, _ := strconv.Atoi(os.Args[3]); bs > 0 {
			if err := zw.SetConcurrency(bs, 4); err != nil {
				panic(err)
			}
		}
	}
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	buf := make([]byte, chunk)
	for {
		n, rerr := io.ReadFull(in, buf)
		if n > 0 {
			if _, err := zw.Write(buf[:n]); err != nil {
				panic(err)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			panic(rerr)
		}
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	if err := out.Flush(); err != nil {
		panic(err)
	}
}
