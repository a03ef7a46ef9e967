// Package firmware names the two firmwares a PXE client boots with, BIOS (SeaBIOS) and EFI
// (OVMF), for the lab's QEMU guests and the cluster's VMIs alike.
package firmware
