"""Training small transformer runs: model, data, one run, a sweep of runs. Imports torch; nothing outside this
package does, so fitting and plotting stay fast."""
