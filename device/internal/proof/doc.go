// Package proof holds end-to-end tests of the device SDK against real
// processes: a device process killed with SIGKILL and restarted in a loop
// while the hub restarts, Debian's mosquitto broker, and a measurement of a
// device process's memory while it drains a large backlog. It has no code
// of its own; see its tests.
package proof
