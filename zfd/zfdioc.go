package zfd

// From illumos' sys/zfd.h: the ioctls of the zfd driver. Kept out of the
// illumos-only file so that a test on any platform checks the numbers.
const (
	zfdIOC        = 'Z'<<24 | 'f'<<16 | 'd'<<8
	zfdMuxFlowcon = zfdIOC | 4 // ZFD_MUX_FLOWCON
)
