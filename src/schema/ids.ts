/** Ids are UUIDs; anything longer is cut before it reaches a query (it cannot match either way). */
export function boundedId(id: string | number): string {
  return String(id).slice(0, 64);
}
