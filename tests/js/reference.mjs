// The reference ThumbHash implementation (npm "thumbhash"), as a batch filter for the Python tests.
// stdin:  {"encode": [[width, height, "<base64 RGBA>"], ...], "decode": ["<base64 hash>", ...], "cos": [x, ...]}
// stdout: {"encode": ["<base64 hash>", ...],
//          "decode": [{"w": 32, "h": 24, "rgba": "<base64>", "average": [r, g, b, a], "ratio": 1.4}, ...],
//          "cos": [Math.cos(x), ...], "script": [{"w", "h", "rgba"}, ...]}
// With "script": "<path>", that browser script (thumbsvc's thumbhash.js) is run in a bare context
// and its own decoder decodes the "decode" hashes too.
// Numbers cross as JSON, which both sides print and parse exactly.
import fs from 'node:fs'
import vm from 'node:vm'

import {
  rgbaToThumbHash,
  thumbHashToApproximateAspectRatio,
  thumbHashToAverageRGBA,
  thumbHashToRGBA,
} from 'thumbhash'

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const input = JSON.parse(Buffer.concat(chunks).toString('utf8'))
const base64 = (bytes) => Buffer.from(bytes).toString('base64')
const bytes = (text) => new Uint8Array(Buffer.from(text, 'base64'))

const encoded = (input.encode || []).map(([w, h, rgba]) => base64(rgbaToThumbHash(w, h, bytes(rgba))))
const decoded = (input.decode || []).map((text) => {
  const hash = bytes(text)
  const { w, h, rgba } = thumbHashToRGBA(hash)
  const { r, g, b, a } = thumbHashToAverageRGBA(hash)
  return { w, h, rgba: base64(rgba), average: [r, g, b, a], ratio: thumbHashToApproximateAspectRatio(hash) }
})
const cosines = (input.cos || []).map((x) => Math.cos(x))
let script = []
if (input.script) {
  const page = { window: {}, document: { readyState: 'complete', querySelectorAll: () => [] } }
  vm.runInNewContext(fs.readFileSync(input.script, 'utf8'), page)
  script = (input.decode || []).map((text) => {
    const { w, h, rgba } = page.window.thumbsvcThumbhash.decode(bytes(text))
    return { w, h, rgba: base64(Array.from(rgba)) }
  })
}
process.stdout.write(JSON.stringify({ encode: encoded, decode: decoded, cos: cosines, script }))
