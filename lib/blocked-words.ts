/*
 * Whole-word matching of a list of blocked words (or phrases) in any script, with one precompiled RegExp.
 *
 * JavaScript's \b knows only ASCII word characters: 'école' would "end" inside 'écoles' at the é, and
 * a Cyrillic or CJK word has no \b at all. A word here is bounded by lookarounds on letters, digits and
 * combining marks (\p{L}\p{N}\p{M}) of every script instead. Both the words and the content are NFKC
 * normalized first, so a full-width form ('ＳＰＡＭ'), a ligature ('ﬁ') or a decomposed accent
 * ('e' + U+0301) reads as the plain form it displays as; the `i` flag with `u` folds case (simple case
 * folding: 'ÉCOLE' is 'école', but 'STRASSE' is not 'straße').
 */

/** What a word is made of, in any script: a match may not have one of these right before or after it. */
const WORD_CHARACTER = '[\\p{L}\\p{N}\\p{M}]'
/** The characters that mean something in a pattern; with the `u` flag only these may be escaped. */
const PATTERN_SYNTAX = /[\\^$.*+?()[\]{}|/]/g

function normalWord (word: string): string {
  return word.normalize('NFKC').trim()
}

/** One RegExp that finds any of `words` as a whole word, case-insensitively; null for no words. */
export function blockedWordsPattern (words: readonly string[]): RegExp | null {
  const distinct = [...new Set(words.map(normalWord))].filter((word) => word.length > 0)
  if (distinct.length === 0) return null
  const alternatives = distinct.map((word) => word.replace(PATTERN_SYNTAX, '\\$&')).join('|')
  // No `g` flag: test() on a global RegExp keeps lastIndex between calls and would skip matches.
  return new RegExp(`(?<!${WORD_CHARACTER})(?:${alternatives})(?!${WORD_CHARACTER})`, 'iu')
}

/** Whether `content` holds one of the pattern's words, once normalized as the words were. */
export function hasBlockedWord (pattern: RegExp, content: string): boolean {
  return pattern.test(content.normalize('NFKC'))
}
