'use strict'
// A real GELF UDP receiver for dockerlogger's end-to-end tests: graygelf's
// server (npm package graygelf, installed by `cd test && npm ci --ignore-scripts --omit=optional`), which
// takes uncompressed, gzip and zlib GELF datagrams and reassembles chunked
// ones. Every message it decodes is printed to stdout as one JSON line.
//
// usage: node udp-receiver.js PORT   (listens on 127.0.0.1:PORT)
// The first line printed is {"gelfsink_listening": PORT} once bound.
const GrayGelfServer = require('graygelf/server')

const port = Number(process.argv[2])
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: node udp-receiver.js PORT\n')
  process.exit(2)
}

const server = GrayGelfServer()
server.on('error', (err) => {
  process.stderr.write(`gelfsink: ${err && err.stack ? err.stack : err}\n`)
  process.exit(1)
})
server.on('message', (msg) => process.stdout.write(JSON.stringify(msg) + '\n'))
server.listen(port, '127.0.0.1')
server._udp.on('listening', () => {
  process.stdout.write(JSON.stringify({ gelfsink_listening: server._udp.address().port }) + '\n')
})
