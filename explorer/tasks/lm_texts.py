"""Held-out texts written for this project (not in the calibration text) for SmolLM2 perplexity: prose, code and
numbers, three passages each. No third-party text."""

PROSE = (
    "The lighthouse keeper kept a notebook for every storm. In it she wrote the time the wind turned, the colour "
    "of the sea before the rain, and the names of the boats that came in late. Most nights nothing happened at "
    "all, and the notebook filled with short lines about fog and the price of lamp oil. Years later, when the "
    "light was automated and she moved to a flat in town, her grandson found the notebooks in a box and read "
    "them one winter, a page at a time, as if they were letters from someone he had never met.",
    "Our street has a small bakery that opens before dawn. The owner, a tall man with flour on his sleeves, "
    "never writes anything down; he remembers who likes the dark rye and who wants the rolls cut in half. When "
    "the road was closed for repairs last spring, he carried the bread to the corner in wooden trays, and the "
    "queue simply moved twenty metres down the hill. Nobody complained, because the bread was still warm.",
    "A good meeting has a clear question, the right people and an end time that everyone respects. Most bad "
    "meetings fail on the first point: people arrive without knowing what has to be decided, so they talk about "
    "everything instead. Writing the question at the top of the invitation takes one minute and saves an hour. "
    "If nobody can write that question, the meeting is probably not needed at all.",
)

CODE = (
    "def parse_duration(text):\n"
    "    \"\"\"Turn strings like '1h30m' or '45s' into seconds.\"\"\"\n"
    "    units = {'h': 3600, 'm': 60, 's': 1}\n"
    "    total, number = 0, ''\n"
    "    for ch in text.strip():\n"
    "        if ch.isdigit():\n"
    "            number += ch\n"
    "        elif ch in units and number:\n"
    "            total += int(number) * units[ch]\n"
    "            number = ''\n"
    "        else:\n"
    "            raise ValueError(f'bad duration: {text!r}')\n"
    "    return total\n",
    "class Inventory:\n"
    "    def __init__(self):\n"
    "        self.items = {}\n"
    "\n"
    "    def add(self, name, count=1):\n"
    "        self.items[name] = self.items.get(name, 0) + count\n"
    "\n"
    "    def remove(self, name, count=1):\n"
    "        if self.items.get(name, 0) < count:\n"
    "            raise KeyError(name)\n"
    "        self.items[name] -= count\n"
    "        if self.items[name] == 0:\n"
    "            del self.items[name]\n"
    "\n"
    "    def total(self):\n"
    "        return sum(self.items.values())\n",
    "function debounce(fn, waitMs) {\n"
    "  let timer = null;\n"
    "  return function (...args) {\n"
    "    if (timer !== null) {\n"
    "      clearTimeout(timer);\n"
    "    }\n"
    "    timer = setTimeout(() => {\n"
    "      timer = null;\n"
    "      fn.apply(this, args);\n"
    "    }, waitMs);\n"
    "  };\n"
    "}\n"
    "\n"
    "const onResize = debounce(() => console.log(window.innerWidth), 200);\n"
    "window.addEventListener('resize', onResize);\n",
)

NUMBERS = (
    "Quarterly sales, in thousands of euros: January 412.5, February 398.0, March 455.25. April rose to 470.1, "
    "May reached 502.8 and June closed at 488.4. The first half totalled 2727.05, up 6.3% on last year's "
    "2565.4. Returns were 1.8% of sales, against 2.1% a year earlier.",
    "Train 7421 leaves at 06:42 from platform 3 and arrives at 09:15. Train 7425 leaves at 08:10 and arrives at "
    "10:51, with a stop of 4 minutes at 09:33. On Sundays the 06:42 runs at 07:12 instead, and the 08:10 is "
    "replaced by a bus that takes 2 hours and 55 minutes.",
    "Measurements of the beam: 1.204, 1.198, 1.211, 1.207, 1.195 and 1.202 metres. The mean is 1.2028 and the "
    "spread from the smallest to the largest is 0.016. At 20.5 degrees the load was 350 kg; at 31.0 degrees it "
    "fell to 342 kg, a drop of 2.29%.",
)
