# Turns a QEMU guest's serial console into the lines the kernel tier reads (run.sh, p2p-oracle.sh,
# vfio.sh pipe every guest through `sed -f console.sed`).
# A CRLF ends a line; a bare carriage return inside a line ends it too (SeaBIOS's
# 'Booting from ROM...\r' glued itself to KTIER-BOOTED once).
s/\r$//
s/\r/\n/g
# Terminal control sequences (SeaBIOS and the kernel clear the screen and set modes).
s/\x1b\[[0-9;?]*[A-Za-z]//g
s/\x1bc//g
# A marker the guest prints always starts a line. The serial port can drop the characters still in
# its FIFO when the kernel takes the UART over, newline included: seen in CI and here (1 boot in 8)
# as 'Booting from ROM..KTIER-BOOTED ...', which then read as a guest that never reached /init.
s/\([^\n]\)\(KTIER-\(BOOTED\|MODULES-LOADED\|INSMOD-FAILED\|DMESG\|EXIT\) \|KTEST \(PASS\|FAIL\) \|KTEST-SUMMARY: \|VFIO-ROW \|P2P-\(TEXT\|JSON-BEGIN\|JSON-END\|TREE-BEGIN\|TREE-END\|VERIFY-EXIT\)\)/\1\n\2/g
