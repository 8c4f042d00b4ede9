package qemumachine

import (
	"errors"
	"fmt"
	"strings"
)

// AfterMessage is what a BootSector guest does once it has printed.
type AfterMessage int

// What the boot sector does after printing.
const (
	Halt     AfterMessage = iota // halt forever: the machine stays on
	PowerOff                     // ACPI soft-off (PM1a_CNT at 0x604, SLP_EN): the machine turns itself off
)

// BootSector returns a 512-byte x86 boot sector (MBR, or an El Torito
// no-emulation boot image) that writes "\r\n" + message + "\r\n" to COM1
// and then halts or powers off. It is the project's cheapest test OS: a
// guest reaches its message about a second after power-on under TCG.
func BootSector(message string, then AfterMessage) ([]byte, error) {
	if strings.ContainsRune(message, 0) {
		return nil, errors.New("boot sector: message contains NUL")
	}
	// Real mode at 0x7C00 (DS=0; CS may be 0 or 0x7C0, so only relative
	// jumps): print the NUL-terminated string at si to port 0x3F8.
	code := []byte{
		0x31, 0xC0, // xor ax,ax
		0x8E, 0xD8, // mov ds,ax
		0xFC,             // cld
		0xBE, 0x00, 0x00, // mov si,msg (patched below)
		0xBA, 0xF8, 0x03, // mov dx,0x3F8
		0xAC,       // loop: lodsb
		0x84, 0xC0, // test al,al
		0x74, 0x03, // jz done
		0xEE,       // out dx,al
		0xEB, 0xF8, // jmp loop
	}
	switch then {
	case Halt:
	case PowerOff:
		// QEMU's PIIX4 and ICH9 ACPI: SLP_TYP 0 with SLP_EN is soft-off,
		// at the PM base SeaBIOS programs (0x600).
		code = append(code,
			0xBA, 0x04, 0x06, // mov dx,0x604
			0xB8, 0x00, 0x20, // mov ax,0x2000
			0xEF, // out dx,ax
		)
	default:
		return nil, fmt.Errorf("boot sector: after message %d: unknown", then)
	}
	code = append(code,
		0xF4,       // done: hlt
		0xEB, 0xFD, // jmp done
	)
	msgAt := 0x7C00 + len(code)
	code[6], code[7] = byte(msgAt), byte(msgAt>>8)
	code = append(code, "\r\n"+message+"\r\n\x00"...)
	if len(code) > 510 {
		return nil, fmt.Errorf("boot sector: message of %d bytes: too long", len(message))
	}
	sec := make([]byte, 512)
	copy(sec, code)
	sec[510], sec[511] = 0x55, 0xAA
	return sec, nil
}
