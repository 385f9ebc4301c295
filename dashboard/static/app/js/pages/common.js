// Lookups several pages share: venues, products and images as <select> options.

import { get, list } from '../api.js';

export async function lookups() {
  const [venues, products, images] = await Promise.all([get('venues'), get('products'), get('images')]);
  return { venues: list(venues), products: list(products), images: list(images) };
}

export const venueOptions = (vs, any) => [...(any ? [['', any]] : []), ...vs.map((v) => [v.code, `${v.code} — ${v.name || ''}`])];
export const productOptions = (ps, any) => [...(any ? [['', any]] : []), ...ps.map((p) => [p.code, `${p.code} — ${p.name || ''}`])];
export const imageOptions = (is, any) => [...(any ? [['', any]] : []), ...is.filter((i) => i.state !== 'uploading').map((i) => [i.name, i.name])];
