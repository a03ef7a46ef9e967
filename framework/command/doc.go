// Package command runs external programs and reports their failures the same way everywhere:
// an *Error carries the command line, shell-quoted so that pasting it into a shell runs the
// same command (directory and added environment included), what the command printed, and why
// it failed. kind's exec.RunError is the model; this one also prints the output, because the
// line alone rarely says what went wrong.
//
// Output is the one way framework packages run a program and read its standard output; a
// caller that streams or pipes (dpkg-deb into a tar reader, say) builds the *Error itself from
// LineOf and what it captured.
package command
