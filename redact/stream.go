package redact

import (
	"bufio"
	"errors"
	"io"
)

// maxLine is the longest line Stream accepts.
const maxLine = 16 << 20

// ErrLineTooLong is returned by Stream for a line longer than 16 MiB. A
// line is never cut in two: a PAN or a field value split across the cut
// could survive, so Stream stops instead.
var ErrLineTooLong = errors.New("redact: line longer than 16 MiB")

// Stream copies src to dst line by line, each line scrubbed (the rules of
// the logs; `chdproxy redact`). Line endings and a missing final newline are
// kept. It returns the first read or write error, or ErrLineTooLong.
func (rd *Redactor) Stream(dst io.Writer, src io.Reader) error {
	br := bufio.NewReaderSize(src, 64<<10)
	var long []byte // a line longer than the reader's buffer, being gathered
	inLong := false
	for {
		chunk, err := br.ReadSlice('\n')
		if inLong || errors.Is(err, bufio.ErrBufferFull) {
			if len(long)+len(chunk) > maxLine {
				return ErrLineTooLong
			}
			long = append(long, chunk...)
			if errors.Is(err, bufio.ErrBufferFull) {
				inLong = true
				continue
			}
			chunk = long
		}
		if len(chunk) > 0 {
			if _, werr := dst.Write(rd.Scrub(chunk)); werr != nil {
				return werr
			}
		}
		long, inLong = long[:0], false
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
