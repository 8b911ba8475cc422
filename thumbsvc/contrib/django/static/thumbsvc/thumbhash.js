// thumbsvc: paint <img data-thumbhash="..."> placeholders until each image has loaded (see docs/django.md).
// decode() is a compact port of thumbHashToRGBA from npm's thumbhash (MIT licence, Evan Wallace).
(() => {
  const { PI, cos, max, min, round } = Math
  function decode(hash) {
    const h24 = hash[0] | (hash[1] << 8) | (hash[2] << 16), h16 = hash[3] | (hash[4] << 8)
    const alpha = h24 >> 23, landscape = h16 >> 15, long = alpha ? 5 : 7
    const [rx, ry] = landscape ? [long, h16 & 7] : [h16 & 7, long]
    const dc = [(h24 & 63) / 63, ((h24 >> 6) & 63) / 31.5 - 1, ((h24 >> 12) & 63) / 31.5 - 1, alpha ? (hash[5] & 15) / 15 : 1]
    const scale = [((h24 >> 18) & 31) / 31, ((h16 >> 3) & 63) / 50.4, ((h16 >> 9) & 63) / 50.4, (hash[5] >> 4) / 15]
    const sizes = [[max(3, rx), max(3, ry)], [3, 3], [3, 3], [5, 5]].slice(0, alpha ? 4 : 3)
    let n = 0
    const terms = sizes.map(([nx, ny], c) => {
      const list = []
      for (let cy = 0; cy < ny; cy++)
        for (let cx = cy ? 0 : 1; cx * ny < nx * (ny - cy); cx++, n++)
          list.push([cx, cy, (((hash[(alpha ? 6 : 5) + (n >> 1)] >> ((n & 1) << 2)) & 15) / 7.5 - 1) * scale[c]])
      return list
    })
    const ratio = rx / ry, w = round(ratio > 1 ? 32 : 32 * ratio), h = round(ratio > 1 ? 32 / ratio : 32)
    const rgba = new Uint8Array(w * h * 4)
    for (let y = 0, i = 0; y < h; y++)
      for (let x = 0; x < w; x++, i += 4) {
        const v = dc.slice()
        terms.forEach((list, c) => {
          for (const [cx, cy, f] of list) v[c] += f * cos((PI / w) * (x + 0.5) * cx) * cos((PI / h) * (y + 0.5) * cy) * 2
        })
        const [l, p, q, a] = v, b = l - (2 / 3) * p, r = (3 * l - b + q) / 2
        rgba.set([r, r - q, b, a].map((c) => max(0, 255 * min(1, c))), i)
      }
    return { w, h, rgba }
  }
  function paint(img) {
    const clear = () => ['background-image', 'background-color'].forEach((name) => img.style.removeProperty(name))
    if (img.complete && img.naturalWidth) return clear()
    img.addEventListener('load', clear, { once: true })
    if (img.style.backgroundImage) return // the server wrote the image already
    try {
      const { w, h, rgba } = decode(Uint8Array.from(atob(img.dataset.thumbhash), (c) => c.charCodeAt(0)))
      const canvas = Object.assign(document.createElement('canvas'), { width: w, height: h })
      const context = canvas.getContext('2d'), data = context.createImageData(w, h)
      data.data.set(rgba)
      context.putImageData(data, 0, 0)
      Object.assign(img.style, { backgroundImage: `url(${canvas.toDataURL()})`, backgroundSize: 'cover', backgroundPosition: 'center' })
    } catch (error) {} // not a ThumbHash: the background colour stays
  }
  const run = (root = document) => root.querySelectorAll('img[data-thumbhash]').forEach(paint)
  window.thumbsvcThumbhash = { decode, paint: run } // paint(root) again after adding images to the page
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', () => run())
  else run()
})()
