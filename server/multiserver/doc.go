// Package multiserver holds the tests of several rpi-deployd processes sharing one
// PostgreSQL database (issue 17): hostnames allocated exactly once while the
// boards' hellos arrive at different servers, one of which is SIGKILLed, and the
// database restarted under a batch. It has no code of its own outside its tests.
package multiserver
