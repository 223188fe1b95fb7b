"""A small stopword-based language detector, enough to tell a draft's language from its
ticket's. Pure; linear in the text. Knows English, Italian, German, French, Spanish,
Portuguese and Dutch; answers None when fewer than MIN_HITS stopwords decide it or two
languages tie."""
from __future__ import annotations

import re
from collections import Counter

MIN_HITS = 3
MAX_WORDS = 2000
_WORD = re.compile(r"[^\W\d_]+")
STOPWORDS: dict[str, frozenset[str]] = {lang: frozenset(words.split()) for lang, words in {
    "en": "the and is are was you your we our to of for with this that it have has not be will can please thank"
          " thanks order would could there been from which what when",
    "it": "il lo la gli le di che è sono per con una uno del della non questo questa grazie ordine siamo suo sua"
          " nel alla anche come più ci ti vi abbiamo",
    "de": "der die das und ist sind nicht ich sie wir ein eine mit für auf dem den des zu ihre ihr bitte danke"
          " bestellung haben wird wurde auch",
    "fr": "le la les et est sont vous nous une des du pour avec pas que qui dans votre merci commande avons sur"
          " ce cette être",
    "es": "el la los las y es son usted nosotros una del para con que por su sus gracias pedido hemos está como"
          " pero este esta",
    "pt": "o a os as e é são você nós uma do da para com não que por seu sua obrigado pedido temos está como"
          " mas este esta",
    "nl": "de het een en is zijn niet ik u wij met voor op van dat dit uw bedankt bestelling hebben wordt ook",
}.items()}


def detect_language(text: str) -> str | None:
    """The language code whose stopwords occur most in `text`, or None when undecided."""
    hits: Counter[str] = Counter()
    for count, match in enumerate(_WORD.finditer(text.lower())):
        if count >= MAX_WORDS:
            break
        word = match.group(0)
        for lang, words in STOPWORDS.items():
            if word in words:
                hits[lang] += 1
    ranked = hits.most_common(2)
    if not ranked or ranked[0][1] < MIN_HITS or (len(ranked) > 1 and ranked[1][1] == ranked[0][1]):
        return None
    return ranked[0][0]
