import { describe, expect, it } from 'vitest';
import { LruMap } from '../src/lru.ts';

describe('LruMap', () => {
  it('keeps at most max entries and drops the least recently used first', () => {
    const m = new LruMap<string, number>(3);
    m.set('a', 1).set('b', 2).set('c', 3);
    expect(m.get('a')).toBe(1); // a is now the most recently used
    m.set('d', 4); // b goes
    expect(m.size).toBe(3);
    expect(m.get('b')).toBeUndefined();
    expect([m.get('a'), m.get('c'), m.get('d')]).toEqual([1, 3, 4]);
    m.set('c', 30); // updating refreshes too: a goes next
    m.set('e', 5);
    expect(m.get('a')).toBeUndefined();
    expect(m.get('c')).toBe(30);
    expect(m.delete('c')).toBe(true);
    expect(m.size).toBe(2);
    m.clear();
    expect(m.size).toBe(0);
  });

  it('refuses a bound that is not a positive integer', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => new LruMap(bad)).toThrow(/positive integer/);
  });
});
