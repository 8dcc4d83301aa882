import DMABufCLI
import Foundation

exit(dmabufMain())
