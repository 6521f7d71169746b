"""Write the small data files shipped in rlhf/data/files/ (demonstrations, train and held-out prompts).

Every instruction, answer and prompt below was written by hand for this project (Apache-2.0); the
script only parses the blocks, numbers the rows and checks them. Run from the repository root:

    python scripts/make_shipped_data.py

Demonstration blocks are "Q: ..." then "A: ..." (the answer may span lines, e.g. a short list),
separated by blank lines. Prompt blocks hold one prompt per line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "rlhf" / "data" / "files"

DEMOS_COOKING = """
Q: How long should I boil an egg if I want a soft, runny yolk?
A: Lower the egg into water that is already boiling and cook it for about 6 minutes. Then move it to cold water for a minute so it stops cooking and is easier to peel.

Q: What's the easiest way to cook rice on the stove?
A: Rinse 1 cup of rice, then add it to a pot with 1.5 to 2 cups of water and a pinch of salt. Bring it to a boil, cover, turn the heat to low and simmer for about 15 minutes. Let it rest covered for 5 minutes, then fluff it with a fork.

Q: Why do recipes tell you to rest meat after cooking?
A: Resting lets the juices, which were pushed toward the center by the heat, spread back through the meat. If you cut it right away, more juice runs onto the board. Five to ten minutes is enough for most steaks and chops.

Q: Can I substitute baking soda for baking powder?
A: Not directly. Baking soda is about three times stronger and needs an acid, such as yogurt or lemon juice, to work. To replace 1 teaspoon of baking powder, mix 1/4 teaspoon of baking soda with 1/2 teaspoon of cream of tartar.

Q: Give me three quick breakfast ideas that don't need cooking.
A: Here are three easy options:
- Overnight oats: oats soaked in milk or yogurt with fruit.
- Greek yogurt topped with berries and a handful of nuts.
- Whole-grain toast with peanut butter and banana slices (just a toaster needed).

Q: How do I keep cut avocado from turning brown?
A: Brush the cut surface with lemon or lime juice, then wrap it tightly in plastic wrap so air can't reach it. Storing it in the fridge also slows the browning.

Q: What does it mean to "fold" ingredients together?
A: Folding is a gentle way of mixing that keeps air in a batter. You cut down through the middle with a spatula, sweep along the bottom, and turn the mixture over on itself, rotating the bowl as you go. It is used for whipped cream, beaten egg whites and light cake batters.

Q: My soup is too salty. How can I fix it?
A: The simplest fix is to add more unsalted liquid, such as water or low-sodium stock, and adjust the other seasonings. You can also add more of the bulk ingredients, like vegetables, beans or rice. A squeeze of lemon juice can make the saltiness less noticeable.

Q: How can I tell if a pan is hot enough before adding food?
A: Flick a few drops of water into the pan. If they sizzle and evaporate slowly, it is moderately hot; if they bead up and skate around, it is hot enough for searing. For oil, look for a light shimmer on the surface.

Q: What's the difference between baking and roasting?
A: Both cook food with dry heat in an oven. "Roasting" is usually used for foods that already have structure, like meat and vegetables, often at higher temperatures. "Baking" usually refers to foods that set as they cook, like bread, cakes and casseroles.

Q: Suggest a simple vegetarian dinner I can make in 20 minutes.
A: Try a chickpea and spinach stir-fry. Soften garlic and onion in olive oil, add a drained can of chickpeas and a teaspoon of cumin, then stir in a few handfuls of spinach until it wilts. Season with salt and lemon juice and serve it over rice or with bread.

Q: How should I store fresh herbs like parsley and cilantro?
A: Trim the stems and stand the herbs in a glass with a little water, like a bouquet. Cover the leaves loosely with a plastic bag and keep them in the fridge. Change the water every couple of days and they should stay fresh for about a week.

Q: Why does bread go stale?
A: Staling is mostly caused by starch molecules slowly recrystallizing after baking, which makes the crumb firm and dry. It happens fastest in the fridge, so bread is better kept at room temperature for a few days or frozen for longer storage.

Q: How do I make a basic vinaigrette?
A: Whisk 3 parts oil with 1 part vinegar or lemon juice, then add a pinch of salt and pepper. A little mustard or honey helps it stay mixed and adds flavor. Shake it in a jar before each use.

Q: Is it safe to refreeze meat that has thawed?
A: If the meat was thawed in the fridge and stayed cold, it is generally safe to refreeze, though the texture may suffer a little. Meat thawed on the counter or in warm water should be cooked first rather than refrozen.

Q: What can I use instead of eggs in pancakes?
A: A mashed ripe banana or 1/4 cup of unsweetened applesauce can replace one egg. Another option is a "flax egg": 1 tablespoon of ground flaxseed mixed with 3 tablespoons of water, left to thicken for five minutes.

Q: How do I stop pasta from sticking together?
A: Use plenty of water, about 4 liters per 500 grams of pasta, and make sure it is at a full boil before adding the pasta. Stir during the first couple of minutes, when sticking is most likely. Oil in the water is not needed.

Q: Explain what "al dente" means.
A: "Al dente" is Italian for "to the tooth." It describes pasta cooked until it is tender but still slightly firm in the center when you bite it. Taste it a minute or two before the package time to catch it at that point.

Q: What are some ways to use up overripe bananas?
A: Here are a few good uses:
- Bake banana bread or muffins.
- Freeze slices for smoothies.
- Mash them into pancake batter or oatmeal.
- Blend frozen bananas into a soft-serve style dessert.

Q: Why do onions make you cry?
A: Cutting an onion breaks its cells and releases a chemical that turns into a gas which irritates your eyes. Your eyes make tears to wash it away. A sharp knife and a chilled onion reduce how much gas is released.

Q: How do I know when chicken is fully cooked?
A: The most reliable check is a meat thermometer: chicken is safe at 74°C (165°F) in the thickest part. Without one, cut into the thickest piece; the juices should run clear and the meat should not be pink.

Q: Give me a tip for making fluffier scrambled eggs.
A: Cook them slowly over low to medium-low heat and stir gently, taking them off the heat while they still look slightly wet. They keep cooking on the plate. Whisking the eggs well beforehand also adds air.

Q: What is the purpose of salting pasta water?
A: Salt seasons the pasta from the inside as it absorbs water, so the finished dish tastes better. It has almost no effect on boiling time. About 1 to 2 teaspoons per liter is a common amount.

Q: How can I make my homemade cookies chewier?
A: Use more brown sugar than white sugar, since it holds moisture. Melted butter and an extra egg yolk also help. Finally, take the cookies out when the centers still look a little underdone; they firm up as they cool.

Q: What's a quick way to soften butter for baking?
A: Cut the butter into small cubes and leave them at room temperature for about 15 minutes. Grating cold butter works even faster. Avoid the microwave if you can, because it easily melts part of it.
"""

DEMOS_SCIENCE = """
Q: Why is the sky blue?
A: Sunlight contains all colors, and when it passes through the air, the short blue wavelengths are scattered by gas molecules much more than the longer red ones. That scattered blue light reaches our eyes from every direction, so the sky looks blue.

Q: Explain photosynthesis in simple terms.
A: Photosynthesis is how plants make their own food. Using energy from sunlight, they combine carbon dioxide from the air with water from the soil to make sugar, and they release oxygen as a by-product.

Q: What causes the seasons on Earth?
A: The seasons are caused by the tilt of Earth's axis, about 23.5 degrees. As Earth orbits the Sun, each hemisphere takes turns leaning toward it, getting more direct sunlight and longer days in summer and less in winter. The distance to the Sun is not the main cause.

Q: Why does ice float on water?
A: Water expands when it freezes, because its molecules lock into an open crystal structure. That makes ice about 9% less dense than liquid water, so it floats.

Q: What is the difference between weather and climate?
A: Weather is what the atmosphere is doing over hours or days, like today's rain or temperature. Climate is the average pattern of weather in a place over many years, usually 30 or more.

Q: How do vaccines work?
A: A vaccine shows your immune system a harmless piece or weakened form of a germ. Your body learns to recognize it and makes memory cells, so if you meet the real germ later, your immune system can respond faster and more strongly.

Q: What is gravity?
A: Gravity is the force of attraction between objects that have mass. The more mass an object has, the stronger its pull; that is why Earth keeps us on the ground and keeps the Moon in orbit. Its strength also weakens with distance.

Q: Why do we see lightning before we hear thunder?
A: Light travels about a million times faster than sound. The flash reaches you almost instantly, while the sound travels only about 343 meters per second. Counting the seconds between them and dividing by three gives the distance in kilometers.

Q: What is DNA?
A: DNA is the molecule that carries genetic instructions in living things. It is shaped like a twisted ladder, a double helix, and the order of its four chemical bases (A, T, C and G) encodes the information used to build and run cells.

Q: What's the difference between a virus and a bacterium?
A: Bacteria are single-celled living organisms that can reproduce on their own, and many are harmless or even helpful. Viruses are much smaller and can only reproduce inside a host's cells. Antibiotics work against bacteria but not against viruses.

Q: How does a rainbow form?
A: A rainbow forms when sunlight enters raindrops, bends, reflects off the back of the drop and bends again on the way out. Each color bends by a slightly different amount, so the white light spreads into a band of colors. You see one when the Sun is behind you and rain is in front of you.

Q: What is an atom made of?
A: An atom has a tiny, dense nucleus made of protons and neutrons, surrounded by electrons. Protons have a positive charge, electrons a negative charge, and neutrons no charge. The number of protons decides which element it is.

Q: Why do leaves change color in autumn?
A: Leaves are green because of chlorophyll. In autumn, as days shorten, trees stop making chlorophyll and it breaks down, revealing yellow and orange pigments that were there all along. Some trees also make red pigments in the fall.

Q: What is the boiling point of water?
A: At sea level, pure water boils at 100°C (212°F). At higher altitudes the air pressure is lower, so water boils at a lower temperature; in a city at 2,000 meters it boils at about 93°C.

Q: Explain what evaporation is.
A: Evaporation is when a liquid turns into a gas at its surface. Some molecules gain enough energy to escape into the air, which is why puddles dry up. It happens faster when it is warm, windy or dry.

Q: How do magnets work, in simple words?
A: In a magnet, the tiny magnetic fields of many atoms line up in the same direction and add together. This creates a magnetic field with a north and a south pole. Opposite poles attract, like poles repel, and the field can pull on metals such as iron.

Q: What is the speed of light?
A: In a vacuum, light travels at about 299,792 kilometers per second, often rounded to 300,000 km/s. At that speed, light from the Sun takes a little over 8 minutes to reach Earth.

Q: Why does the Moon have phases?
A: The Moon is always half lit by the Sun, but as it orbits Earth we see different amounts of that lit half. When it is between us and the Sun we see a new moon, and when it is on the opposite side we see a full moon. A full cycle takes about 29.5 days.

Q: What is the difference between mass and weight?
A: Mass is the amount of matter in an object and stays the same everywhere. Weight is the force of gravity pulling on that mass, so it changes with location. On the Moon you would have the same mass but weigh about one sixth as much.

Q: How do plants drink water?
A: Roots absorb water from the soil, and it travels up through thin tubes called xylem to the leaves. As water evaporates from tiny pores in the leaves, it pulls more water up behind it, a process called transpiration.

Q: What is a black hole?
A: A black hole is a region of space where gravity is so strong that nothing, not even light, can escape once it crosses the boundary called the event horizon. Many form when very massive stars collapse at the end of their lives.

Q: Why do we have day and night?
A: Earth spins on its axis about once every 24 hours. The side facing the Sun has day, and the side facing away has night. As Earth turns, places move from one side to the other.

Q: What does a catalyst do in a chemical reaction?
A: A catalyst speeds up a chemical reaction without being used up itself. It provides an easier pathway for the reaction, lowering the energy needed to get it started. Enzymes in your body are catalysts.

Q: Explain the water cycle briefly.
A: Water evaporates from oceans, lakes and plants and rises as vapor. It cools and condenses into clouds, then falls as rain or snow. That water flows into rivers and ground water, returns to the sea, and the cycle repeats.

Q: What is the largest planet in our solar system?
A: Jupiter is the largest planet. It is a gas giant more than 11 times wider than Earth, and its mass is more than twice that of all the other planets combined.

Q: Why is the ocean salty?
A: Rain slowly dissolves minerals from rocks on land, and rivers carry those salts to the sea. When seawater evaporates, the water leaves but the salt stays behind, so over millions of years the ocean has become salty.

Q: What is friction?
A: Friction is the force that resists motion when two surfaces rub against each other. It is why a ball rolling on grass slows down and why your shoes grip the floor. Rough surfaces usually create more friction than smooth ones.

Q: How does sound travel?
A: Sound is a vibration that travels as a wave through a medium such as air, water or solids. The vibrating source pushes on nearby molecules, which push on their neighbors, passing the wave along. Sound cannot travel through a vacuum.

Q: What is an ecosystem?
A: An ecosystem is a community of living things, such as plants, animals and microbes, together with their physical surroundings like water, soil and climate. All the parts interact, for example through food chains and the cycling of nutrients.

Q: Why do stars twinkle?
A: Stars twinkle because their light passes through moving layers of air with different temperatures, which bend it slightly in changing directions. Planets twinkle less because they appear as tiny disks rather than points of light.

Q: What is the difference between a meteor and a meteorite?
A: A meteor is the streak of light you see when a piece of space rock burns up in Earth's atmosphere. If part of that rock survives and lands on the ground, it is called a meteorite.

Q: What are the three states of matter?
A: The three common states are solid, liquid and gas. Solids keep their shape, liquids take the shape of their container but keep their volume, and gases spread out to fill any space. Plasma is often counted as a fourth state.

Q: Why do we need sleep?
A: Sleep lets the body and brain recover. During sleep the brain sorts and stores memories, the body repairs tissue, and hormones that control growth, appetite and mood are regulated. Most adults need about 7 to 9 hours a night.

Q: What is the greenhouse effect?
A: The greenhouse effect is how certain gases in the atmosphere, such as carbon dioxide and water vapor, trap heat from the Sun and keep Earth warm. It is natural and necessary for life, but adding more of these gases strengthens it and warms the planet further.

Q: How does a compass work?
A: A compass needle is a small magnet that can spin freely. Earth acts like a giant magnet, so the needle lines up with its magnetic field, pointing roughly toward magnetic north.

Q: Explain what an electric circuit is.
A: An electric circuit is a closed loop that electricity flows around. It needs a power source such as a battery, wires to carry the current, and a device that uses the energy, like a bulb. If the loop is broken, for example by a switch, the current stops.

Q: Why does metal feel colder than wood at the same temperature?
A: Metal conducts heat much better than wood. When you touch it, it pulls heat away from your skin quickly, so it feels cold even though both are at the same temperature.

Q: What is the function of the heart?
A: The heart is a muscle that pumps blood around the body. The blood carries oxygen and nutrients to the cells and takes away carbon dioxide and waste. An adult heart beats roughly 60 to 100 times a minute at rest.

Q: What is erosion?
A: Erosion is the wearing away and moving of rock and soil by natural forces like water, wind and ice. Rivers carving valleys and waves shaping coastlines are examples. It usually happens slowly, over many years.

Q: How far is the Moon from Earth?
A: The Moon is about 384,400 kilometers (about 239,000 miles) from Earth on average. The distance varies a little because its orbit is slightly oval.
"""

DEMOS_HOWTO = """
Q: How do I change a flat tire?
A: Park on flat ground, turn on your hazard lights and apply the parking brake. Loosen the lug nuts slightly, jack up the car, then remove the nuts and the flat tire. Put on the spare, hand-tighten the nuts, lower the car, and finish tightening them in a star pattern. Drive slowly to get the flat repaired.

Q: What's the best way to remove a coffee stain from a shirt?
A: Act quickly: blot the stain, don't rub it, then rinse it from the back with cold water. Rub in a little liquid laundry detergent, let it sit for a few minutes, and wash as usual. Check that the stain is gone before drying, since heat can set it.

Q: How can I fall asleep faster?
A: Keep a regular bedtime, and keep your bedroom dark, quiet and cool. Put screens away 30 to 60 minutes before bed and avoid caffeine in the afternoon. If you can't sleep after about 20 minutes, get up and do something calm until you feel sleepy.

Q: How do I unclog a slow bathroom sink?
A: First pull out and clean the stopper, since hair often collects there. Then pour half a cup of baking soda into the drain, followed by a cup of vinegar, wait 15 minutes and flush with hot water. If it is still slow, a cheap plastic drain snake usually pulls out the rest.

Q: Explain how to tie a basic square knot.
A: Cross the right end over the left and tuck it under to make a simple twist. Then cross the left end over the right and tuck it under again. Pull both ends tight. A handy reminder is "right over left, then left over right."

Q: How do I take a screenshot on Windows?
A: Press Windows + Shift + S to open the Snipping Tool and select the area you want; it is copied to your clipboard. Pressing Print Screen captures the whole screen, and Windows + Print Screen saves it straight to your Pictures\\Screenshots folder.

Q: What are the steps to write a good cover letter?
A: Start by addressing a specific person if you can and naming the job you want. In one or two short paragraphs, show how your skills and experience match what they are looking for, with a concrete example. End by thanking them and saying you'd welcome an interview. Keep it to one page.

Q: How do I clean a cast iron pan?
A: While the pan is still warm, wipe it out and scrub it with hot water and a brush; a little mild soap is fine. Dry it completely on the stove, then rub a thin layer of oil over the inside to keep it seasoned. Avoid soaking it or putting it in the dishwasher.

Q: How can I make my phone battery last longer during the day?
A: Lower the screen brightness, shorten the screen timeout and turn on battery saver mode. Close apps that use location or run in the background, and turn off Bluetooth or Wi-Fi when you don't need them. Weak mobile signal also drains the battery faster.

Q: What's a simple way to start a compost pile at home?
A: Pick a corner of the yard or a bin and layer "greens" like fruit and vegetable scraps and grass clippings with "browns" like dry leaves, cardboard and paper. Keep it about as damp as a wrung-out sponge and turn it every week or two. Avoid meat, dairy and oily food.

Q: How do I politely end a phone call that is going on too long?
A: Wait for a natural pause, then give a friendly, clear signal, for example: "It's been great catching up, but I need to get going. Let's talk again soon." Thanking the person and mentioning a next step makes the goodbye feel warm rather than abrupt.

Q: How should I prepare for a job interview?
A: Research the company and reread the job description. Prepare short stories that show your skills, such as a problem you solved, and practice answering common questions out loud. Have two or three questions ready to ask them, and plan your outfit and route the day before.

Q: How do I keep houseplants alive?
A: Most houseplants die from overwatering, so water only when the top few centimeters of soil are dry and make sure the pot drains. Put each plant in the light it likes; check its label. Wipe dusty leaves now and then and feed it lightly during spring and summer.

Q: How can I memorize a short speech?
A: Break it into small sections and learn one at a time, adding the next only when the first is solid. Say it out loud rather than reading it silently, and link each section to a key word or image. Practicing in short sessions over several days works better than one long session.

Q: What's the right way to wash my hands?
A: Wet your hands, apply soap, and scrub all surfaces, including the backs, between your fingers and under your nails, for at least 20 seconds. Rinse under running water and dry with a clean towel or air dryer.

Q: How do I set a budget for the first time?
A: Write down your monthly income after tax, then list fixed costs like rent and bills. Track what you spend for a month to see where the rest goes. Set limits for categories like food and fun, and put some money into savings first, even a small amount.

Q: How do I get rid of fruit flies in the kitchen?
A: Remove what attracts them: put ripe fruit in the fridge, take out the trash and rinse recycling. Then set a trap with a small bowl of apple cider vinegar and a drop of dish soap; the soap breaks the surface so they sink. Most will be gone in a few days.

Q: How can I improve my handwriting?
A: Slow down and hold the pen loosely, since a tight grip makes letters shaky. Practice the basic shapes, lines, circles and loops, then single letters, for ten minutes a day. Writing on lined paper helps you keep letters a consistent size.

Q: How do I write a thank-you note after receiving a gift?
A: Keep it short and personal. Thank them for the specific gift, say how you will use it or why you like it, and add a warm closing line. For example: "Thank you so much for the blue scarf. It's already kept me warm on two cold walks, and the color is perfect!"

Q: How do I fold a fitted sheet?
A: Hold the sheet inside out by two corners and tuck one corner into the other. Do the same with the other two corners, then lay it flat so the tucked corners line up. Fold the elastic edges in to make a rectangle, then fold it into a square.

Q: What should I do if my computer is running slowly?
A: Restart it first, since that clears a lot of temporary problems. Then check which programs use the most memory and close the ones you don't need, and remove programs that start automatically. Make sure there is free disk space and that updates are installed. A quick malware scan is also worth doing.

Q: How do I jump-start a car?
A: Park the working car close by and turn both cars off. Connect red to the dead battery's positive terminal, then to the good battery's positive. Connect black to the good battery's negative, and the other black clamp to bare metal on the dead car. Start the working car, wait a few minutes, then start the dead one and remove the cables in reverse order.

Q: How do I make a good first impression at a new job?
A: Arrive on time, learn people's names and ask questions when you're unsure instead of guessing. Listen more than you talk during the first weeks, and follow through on small tasks reliably. Being friendly and curious goes a long way.

Q: How can I save money on groceries?
A: Plan your meals for the week and shop with a list, and try not to shop hungry. Compare unit prices, buy store brands, and use frozen fruit and vegetables, which are cheap and don't spoil. Cooking larger batches and using leftovers also cuts waste.

Q: How do I back up photos from my phone?
A: The easiest way is to turn on your phone's cloud backup, such as Google Photos or iCloud Photos, which uploads new pictures automatically. For a second copy, connect the phone to a computer now and then and copy the photo folder to an external drive.
"""

DEMOS_DEFINITIONS = """
Q: What does "procrastinate" mean?
A: To procrastinate means to delay doing something you should do, often by doing easier or more pleasant things instead. For example, cleaning your desk to avoid starting an essay is procrastinating.

Q: Define inflation.
A: Inflation is the general rise in prices over time, which means each unit of money buys a little less than before. For example, if inflation is 3% a year, something that costs $100 today would cost about $103 next year.

Q: What is a metaphor?
A: A metaphor is a figure of speech that describes something by saying it is something else, to suggest a similarity. "Time is a thief" is a metaphor. Unlike a simile, it does not use "like" or "as."

Q: What is the meaning of "empathy"?
A: Empathy is the ability to understand and share how another person feels, as if you were in their situation. It is different from sympathy, which means feeling sorry for someone without necessarily sharing their feelings.

Q: What is a mortgage?
A: A mortgage is a loan used to buy a home or other property. The property serves as security, so if the borrower stops making payments, the lender can take it. Mortgages are usually paid back in monthly installments over 15 to 30 years.

Q: What's an adjective?
A: An adjective is a word that describes a noun or pronoun, telling you what kind, how many or which one. In "a small red car," the words "small" and "red" are adjectives.

Q: Explain what a haiku is.
A: A haiku is a short poem from Japan with three lines. In English it traditionally has 5 syllables in the first line, 7 in the second and 5 in the third. Haiku often capture a single moment in nature.

Q: What does "ubiquitous" mean?
A: "Ubiquitous" means present or found everywhere. For example: "Smartphones have become ubiquitous in daily life."

Q: What is a democracy?
A: A democracy is a system of government in which power belongs to the people, who usually choose their leaders through free and fair elections. Most modern democracies are representative, meaning citizens elect officials to make laws on their behalf.

Q: What's the difference between "affect" and "effect"?
A: Usually "affect" is a verb meaning to influence, and "effect" is a noun meaning a result. For example: "The weather affects my mood" and "The weather has an effect on my mood." A simple memory aid is "A for action, E for end result."

Q: What is compound interest?
A: Compound interest is interest calculated on both the original amount and the interest already earned. Because the interest earns interest, savings grow faster over time. For example, $100 at 10% a year becomes $110 after one year and $121 after two.

Q: What does "GDP" stand for and what does it measure?
A: GDP stands for gross domestic product. It measures the total value of all goods and services produced in a country over a period, usually a year. It is commonly used to compare the size and growth of economies.

Q: What is an allergy?
A: An allergy is when the immune system overreacts to a normally harmless substance, such as pollen, dust or certain foods. The reaction can cause sneezing, itching, rashes or, in severe cases, trouble breathing.

Q: Define "irony."
A: Irony is a contrast between what is expected and what actually happens, or between what is said and what is meant. For example, a fire station burning down is an ironic situation.

Q: What is a noun?
A: A noun is a word that names a person, place, thing or idea. "Teacher," "London," "bicycle" and "happiness" are all nouns.

Q: What is a renewable resource?
A: A renewable resource is one that nature replaces within a human lifetime, such as sunlight, wind, water and trees if they are replanted. Non-renewable resources, like coal and oil, take millions of years to form.

Q: What's the meaning of "resilient"?
A: "Resilient" describes someone or something that recovers quickly from difficulty or returns to shape after being bent. For example: "She was resilient after losing her job and found a new one within a month."

Q: What is an idiom? Give an example.
A: An idiom is a phrase whose meaning can't be worked out from the individual words. For example, "break the ice" means to ease tension and start a conversation, not to actually break ice.

Q: What is a budget deficit?
A: A budget deficit happens when a government, business or person spends more money than it takes in over a period. A government usually covers the gap by borrowing.

Q: What does "nostalgia" mean?
A: Nostalgia is a wistful, often bittersweet longing for the past, especially for happy times or places you remember. Hearing a song from childhood can make you feel nostalgic.

Q: What is a synonym?
A: A synonym is a word that means the same or nearly the same as another word. For example, "happy" and "joyful" are synonyms, and so are "big" and "large."

Q: What is an opinion, as opposed to a fact?
A: A fact is something that can be checked and shown to be true or false, like "Paris is the capital of France." An opinion is a personal belief or judgment, like "Paris is the most beautiful city," and people can reasonably disagree about it.

Q: What is a credit score?
A: A credit score is a number that estimates how likely you are to repay borrowed money, based on your history with loans and credit cards. A higher score usually makes it easier to get a loan and get a lower interest rate. Paying bills on time is the biggest factor.

Q: What does "sustainable" mean?
A: "Sustainable" describes something that can continue for a long time without using up resources or causing lasting harm. Sustainable farming, for example, protects the soil and water so it can produce food for future generations.

Q: What is a hypothesis?
A: A hypothesis is a testable prediction or explanation that a scientist proposes before doing an experiment. For example: "Plants given more light will grow taller." The experiment then supports or contradicts it.

Q: What is the difference between "its" and "it's"?
A: "It's" is short for "it is" or "it has," as in "It's raining." "Its" shows possession, as in "The dog wagged its tail." If you can replace the word with "it is," use "it's."

Q: What is a palindrome?
A: A palindrome is a word, phrase or number that reads the same forward and backward. Examples include "level," "racecar" and the number 12321.

Q: What is an introvert?
A: An introvert is someone who tends to recharge by spending time alone and may find large social gatherings tiring. Introverts are not necessarily shy; they simply prefer quieter settings or smaller groups.

Q: What is a currency exchange rate?
A: An exchange rate is the price of one currency in terms of another. For example, if 1 euro equals 1.10 US dollars, you need $1.10 to buy one euro. Rates change daily based on supply and demand.

Q: Define "photosynthesis" in one sentence.
A: Photosynthesis is the process by which plants use sunlight to turn carbon dioxide and water into sugar and oxygen.
"""

DEMOS_WRITING = """
Q: Rewrite this more politely: "Send me the report now."
A: Could you please send me the report when you have a moment? I'd really appreciate it.

Q: Make this sentence sound more professional: "Hey, I can't come to the meeting, something came up."
A: Unfortunately, I won't be able to attend the meeting due to an unexpected commitment. Please let me know if I can review the notes or contribute afterwards.

Q: Please fix the grammar: "Me and him goes to the store every weeks."
A: Corrected: "He and I go to the store every week."

Q: Shorten this sentence: "At this point in time, we are currently in the process of reviewing all of the applications that we have received."
A: Shorter version: "We are reviewing all the applications we received."

Q: Rewrite this to sound friendlier: "Your order will ship when it ships."
A: Thanks so much for your patience! Your order is being prepared, and we'll send you a tracking link as soon as it ships.

Q: Write a one-sentence summary of the story of Cinderella.
A: A kind young woman mistreated by her stepfamily attends a royal ball with help from her fairy godmother, wins the prince's heart, and is found again when the glass slipper she left behind fits only her.

Q: Give me a catchy title for a blog post about saving money on travel.
A: Here are a few options:
- "See More, Spend Less: Smart Ways to Travel on a Budget"
- "Wanderlust on a Shoestring"
- "Cheap Flights, Rich Memories"

Q: Turn this into a polite reminder email: "You still haven't paid the invoice."
A: Subject: Friendly reminder about invoice payment

Hi [Name], I hope you're doing well. This is a quick reminder that the invoice sent on [date] is still outstanding. Could you let me know when we can expect payment? Thank you, and please reach out if you have any questions.

Q: Rewrite in the active voice: "The cake was eaten by the children."
A: Active voice: "The children ate the cake."

Q: Make this sentence more concise: "Due to the fact that it was raining, we made the decision to stay inside."
A: "Because it was raining, we decided to stay inside."

Q: Write a short, warm birthday message for a coworker.
A: Happy birthday! Thanks for making work brighter with your help and good humor. I hope your day is full of great food, good company and a little well-earned rest.

Q: How can I say "no" to extra work politely?
A: Be clear, kind and brief. For example: "Thanks for thinking of me. I'm fully committed to the current project right now, so I can't take this on without the quality slipping. Could we revisit it next month, or could I help find someone else?"

Q: Rewrite this to be less harsh: "This idea is terrible and will never work."
A: "I have some concerns about this idea. I'm not sure it will work as planned, but maybe we could talk through the risks and see if it can be adjusted."

Q: Give me a better word for "very big."
A: Depending on the context, you could use "huge," "enormous," "massive," "immense" or "vast." For example, "a vast desert" or "an enormous meal."

Q: Write a two-sentence product description for a reusable water bottle.
A: Stay hydrated in style with our leak-proof stainless steel bottle, which keeps drinks cold for 24 hours and hot for 12. It's lightweight, dishwasher-safe and built to replace hundreds of plastic bottles.

Q: Correct the spelling: "I recieved the pakage yesturday."
A: Corrected: "I received the package yesterday."

Q: Rewrite this sentence for a child to understand: "Precipitation is expected throughout the afternoon."
A: "It's going to rain this afternoon."

Q: Write an apology message for missing a friend's party.
A: I'm so sorry I missed your party. I was really looking forward to it and feel bad that I couldn't make it. I'd love to take you out for coffee this week to celebrate and hear all about it.

Q: Help me write a short out-of-office reply.
A: Thank you for your email. I'm out of the office from [start date] to [end date] with limited access to email. I'll reply when I return. For urgent matters, please contact [name] at [email].

Q: Make this more formal: "Thanks a ton for the help, you're awesome!"
A: "Thank you very much for your help. I truly appreciate it."

Q: Suggest a stronger opening sentence for an essay about climate change.
A: Try starting with a concrete image or fact instead of a general statement. For example: "The summer of my tenth birthday, the river behind our house ran completely dry for the first time anyone could remember." A specific detail draws the reader in faster than "Climate change is a big problem."

Q: Rewrite this text message so it sounds less demanding: "Call me back ASAP."
A: "Hi! Could you give me a call back when you get a chance? It's a little urgent. Thanks!"

Q: Write a short caption for a photo of a sunset at the beach.
A: Here are a few options:
- "Golden hour, salty air."
- "Another day, signed off in orange and pink."
- "Chasing the sun until it dipped below the waves."

Q: Give me a polite way to ask someone to repeat themselves.
A: You could say: "Sorry, I didn't quite catch that. Could you say it again?" or "Would you mind repeating the last part?" Both are polite and natural.

Q: Paraphrase: "The early bird catches the worm."
A: Paraphrase: "People who start early or act quickly are more likely to succeed."

Q: Write a simple thank-you line to end a presentation.
A: "Thank you all for your time and attention. I'm happy to take any questions."

Q: Fix the punctuation: "lets eat grandma"
A: Corrected: "Let's eat, Grandma!" The comma matters: it shows you are talking to Grandma, not planning to eat her.

Q: Rewrite this to be more positive: "We can't process your request until Monday."
A: "We'll be able to process your request on Monday. Thank you for your patience!"

Q: Give me three alternatives to starting an email with "I hope this email finds you well."
A: Here are three options:
- "I hope you're having a good week."
- "Thanks for your quick reply on Tuesday."
- Skip the pleasantry and start with the point: "I'm writing about the project deadline."

Q: Make this sentence clearer: "The manager told the employee that he would be promoted soon."
A: The word "he" could mean either person. Clearer versions: "The manager told the employee, 'You'll be promoted soon,'" or "The manager said that the employee would be promoted soon."
"""

DEMOS_MATH = """
Q: If I buy 3 notebooks at $4 each and a pen for $2, how much do I spend in total?
A: The notebooks cost 3 × $4 = $12. Adding the $2 pen gives a total of $14.

Q: A train travels 60 kilometers per hour. How far does it go in 2.5 hours?
A: Distance equals speed times time: 60 km/h × 2.5 hours = 150 kilometers.

Q: What is 15% of 80?
A: 15% of 80 is 12. You can find it as 10% of 80 (8) plus 5% of 80 (4), which gives 12.

Q: I have 24 cookies and want to share them equally among 5 friends and me. How many does each person get?
A: That's 6 people in total, so each person gets 24 ÷ 6 = 4 cookies.

Q: A shirt costs $40 and is on sale for 25% off. What is the sale price?
A: 25% of $40 is $10, so the sale price is $40 - $10 = $30.

Q: If a recipe needs 2 cups of flour for 12 muffins, how much flour do I need for 30 muffins?
A: Each muffin needs 2 ÷ 12 = 1/6 cup of flour. For 30 muffins you need 30 × 1/6 = 5 cups of flour.

Q: Sam is 3 times as old as his daughter, who is 12. How old is Sam?
A: Sam is 3 × 12 = 36 years old.

Q: How many minutes are there in a day?
A: There are 24 hours in a day and 60 minutes in an hour, so a day has 24 × 60 = 1,440 minutes.

Q: A rectangle is 8 meters long and 5 meters wide. What is its area and perimeter?
A: The area is 8 × 5 = 40 square meters. The perimeter is 2 × (8 + 5) = 26 meters.

Q: I earn $18 an hour and work 35 hours a week. How much do I earn per week before taxes?
A: $18 × 35 = $630 per week before taxes.

Q: What is the average of 4, 8, 15 and 21?
A: Add them up: 4 + 8 + 15 + 21 = 48. Divide by the count, 4, to get an average of 12.

Q: A car uses 6 liters of fuel per 100 kilometers. How much fuel does it need for 350 kilometers?
A: 350 km is 3.5 times 100 km, so the car needs 3.5 × 6 = 21 liters of fuel.

Q: If a movie starts at 7:45 pm and lasts 2 hours and 20 minutes, when does it end?
A: Adding 2 hours to 7:45 pm gives 9:45 pm, and 20 more minutes brings it to 10:05 pm.

Q: Tom had $50. He spent $12.50 on lunch and $7.25 on a book. How much does he have left?
A: He spent $12.50 + $7.25 = $19.75 in total, so he has $50 - $19.75 = $30.25 left.

Q: What is 7 times 8?
A: 7 times 8 is 56.

Q: A class has 28 students, and 3/4 of them passed the test. How many passed?
A: A quarter of 28 is 7, so three quarters is 3 × 7 = 21 students.

Q: Convert 5 kilometers to miles.
A: One kilometer is about 0.621 miles, so 5 kilometers is about 3.1 miles.

Q: If I save $25 every week, how long will it take to save $600?
A: $600 ÷ $25 = 24, so it will take 24 weeks, a little under six months.

Q: A pizza is cut into 8 slices. If 3 people eat 2 slices each, what fraction of the pizza is left?
A: They eat 3 × 2 = 6 slices, leaving 2 of 8 slices. That is 2/8, or 1/4 of the pizza.

Q: What is 20 degrees Celsius in Fahrenheit?
A: Multiply by 9/5 and add 32: 20 × 9/5 = 36, and 36 + 32 = 68°F.

Q: A box holds 12 eggs. How many boxes do I need for 100 eggs?
A: 100 ÷ 12 is about 8.33, so 8 boxes hold only 96 eggs. You need 9 boxes, with the last one partly filled.

Q: If 5 pencils cost $3.50, how much does one pencil cost?
A: $3.50 ÷ 5 = $0.70, so one pencil costs 70 cents.

Q: Maria reads 25 pages a day. How many days will it take her to finish a 340-page book?
A: 340 ÷ 25 = 13.6, so she will finish on the 14th day. After 13 days she will have read 325 pages, with 15 pages left for day 14.

Q: What's 12 squared?
A: 12 squared is 12 × 12 = 144.

Q: A bike was $200 last year and now costs $230. By what percentage did the price go up?
A: The price went up by $30. $30 ÷ $200 = 0.15, so the increase is 15%.

Q: Three friends split a restaurant bill of $84 and add a $12 tip. How much does each person pay?
A: The total is $84 + $12 = $96. Split three ways, each person pays $96 ÷ 3 = $32.

Q: How many seconds are in an hour?
A: An hour has 60 minutes, and each minute has 60 seconds, so there are 60 × 60 = 3,600 seconds in an hour.

Q: A garden is 10 meters by 6 meters. If I plant one tomato plant per 2 square meters, how many plants fit?
A: The garden's area is 10 × 6 = 60 square meters. At one plant per 2 square meters, that is 60 ÷ 2 = 30 plants.

Q: If the temperature drops from 5°C to -7°C, how many degrees did it fall?
A: It fell by 5 - (-7) = 12 degrees Celsius.

Q: Is 91 a prime number?
A: No. 91 looks prime, but it equals 7 × 13, so it has divisors other than 1 and itself.
"""

DEMOS_TRAVEL = """
Q: What should I pack for a weekend trip?
A: Pack light: two or three outfits you can mix, comfortable shoes, sleepwear, toiletries and any medicine you take. Add your phone charger, ID, wallet and a small bag for day trips. Check the weather before you go so you can add a jacket or umbrella.

Q: How can I deal with jet lag?
A: Switch to the local schedule as soon as you arrive, eating and sleeping at local times. Get outside in daylight during the day, which helps reset your body clock. Drink water, go easy on alcohol and caffeine, and keep naps short, under 30 minutes.

Q: How early should I get to the airport for an international flight?
A: A common recommendation is to arrive about 3 hours before an international flight and 2 hours before a domestic one. Allow more time at busy airports or during holidays, and check your airline's advice.

Q: What are some tips for traveling on a tight budget?
A: Travel in the off-season, book flights early and be flexible with dates. Stay in hostels, guesthouses or rentals with a kitchen so you can cook some meals. Use public transport, walk a lot, and look for free museums, parks and walking tours.

Q: Is it better to exchange money before I travel or when I arrive?
A: Often the cheapest option is to withdraw local cash from a bank ATM when you arrive, using a card with low foreign fees. Airport exchange counters usually have poor rates. It's still wise to bring a small amount of local cash or a backup card for emergencies.

Q: How can I avoid getting sick on a long flight?
A: Drink plenty of water, wash or sanitize your hands often, especially before eating, and avoid touching your face. Get up and walk around every hour or two and stretch your legs to help circulation. Getting enough sleep before the trip helps too.

Q: What should I do if I lose my passport abroad?
A: Report the loss to the local police and get a copy of the report. Then contact your country's nearest embassy or consulate, which can issue an emergency travel document. Keeping a photo or photocopy of your passport makes this much easier.

Q: How do I pack a carry-on efficiently?
A: Roll your clothes instead of folding them to save space and reduce wrinkles. Wear your bulkiest shoes and jacket on the plane. Put liquids in a clear bag at the top for security, and fill gaps, like the inside of shoes, with socks and small items.

Q: What's a good way to plan a road trip?
A: Choose your route and decide how many hours you're happy to drive each day; four to six is comfortable for most people. Book places to stay for busy stops, and plan a few sights along the way. Get the car checked, and pack snacks, water, a phone charger and offline maps.

Q: Name a few things to do in Paris for a first-time visitor.
A: Here are some classics:
- See the Eiffel Tower, ideally at night when it sparkles.
- Visit the Louvre and see the Mona Lisa.
- Walk along the Seine and through the Marais district.
- Climb the hill to Sacré-Cœur in Montmartre for the view.

Q: How can I stay safe when traveling alone?
A: Share your plans with someone at home and check in regularly. Keep copies of your documents, and carry only the cash you need. Research neighborhoods before booking, arrive in new places during daylight when you can, and trust your instincts if something feels wrong.

Q: What's the difference between a visa and a passport?
A: A passport is an identity document issued by your own country that lets you travel abroad. A visa is permission from another country to enter or stay there, often stamped or attached to your passport. Many countries let visitors from some places enter without a visa.

Q: How can I find cheap flights?
A: Compare prices on flight search sites and set up price alerts for your route. Be flexible: midweek flights and nearby airports are often cheaper. Booking a few weeks to a few months ahead usually beats booking at the last minute.

Q: What are some tips for a long car ride with kids?
A: Leave around nap time if your children are young, and plan a stop every two hours for stretching and bathroom breaks. Pack snacks, water, and a bag of activities like audiobooks, sticker books and simple car games such as "I spy."

Q: What should I know before renting a car abroad?
A: Check whether you need an International Driving Permit and what insurance your credit card already covers. Inspect the car and photograph any damage before driving off. Learn the local road rules, such as which side to drive on, and return the car with the agreed fuel level.

Q: What is travel insurance and do I need it?
A: Travel insurance covers costs from problems like medical emergencies abroad, trip cancellation, lost luggage or delays. It is especially worth having for international trips, since your normal health insurance may not cover you outside your country. Read what each policy covers before buying.

Q: How do I avoid looking like a tourist?
A: Dress simply and in the style locals wear, and keep your map and camera out of sight when you don't need them. Learn a few phrases in the local language and basic customs, like tipping. Walking confidently and planning your route in advance also helps.

Q: What should I bring on a day hike?
A: Bring plenty of water, snacks, sunscreen, a hat and a light rain jacket. Wear comfortable shoes with good grip. Carry a map or offline map app, a charged phone, and a small first aid kit, and tell someone where you're going.

Q: What's the best way to get around Tokyo?
A: The trains and subway are the fastest and easiest way to get around Tokyo. Get a rechargeable IC card, such as Suica or Pasmo, to tap in and out instead of buying single tickets. Try to avoid rush hours, when trains are very crowded.

Q: Give me a short checklist before leaving for a vacation.
A: Here's a quick checklist:
- Passport, tickets and bookings.
- Wallet, cards and some cash.
- Phone, chargers and adapters.
- Medications.
- Lock windows and doors, and take out the trash.
- Ask someone to water plants or feed pets.
"""

DEMOS_HEALTH = """
Q: How much water should I drink each day?
A: Needs vary with size, activity and climate, but a common guide is about 2 to 3 liters of fluids a day for adults, including water from food and other drinks. A simple check is your urine: pale yellow usually means you're drinking enough. Drink more when it's hot or you exercise.

Q: What are some easy ways to add more exercise to my day?
A: Take the stairs instead of the elevator, walk or cycle for short trips, and get up to stretch or walk for a few minutes every hour. Walking during phone calls and doing a short workout while watching TV also add up over the day.

Q: How can I reduce stress after a long day?
A: Try a short walk outside, a few minutes of slow, deep breathing, or a warm shower. Putting away your phone and doing something you enjoy, like reading or cooking, helps your mind switch off. Talking to a friend can also take some weight off.

Q: What makes a healthy breakfast?
A: A good breakfast combines protein, fiber and some healthy fat, which keep you full longer. Examples include eggs with whole-grain toast, oatmeal with nuts and fruit, or yogurt with berries and seeds. Try to limit sugary cereals and pastries.

Q: Is it bad to sit all day?
A: Sitting for long periods without breaks is linked to health problems like back pain and poorer heart health, even for people who exercise. Standing up and moving for a few minutes every 30 to 60 minutes helps. A short walk at lunch is a good habit too.

Q: How can I build a habit of reading more?
A: Start small, for example ten pages a day, and tie it to something you already do, like reading before bed or with your morning coffee. Keep a book or e-reader with you, and choose books you actually enjoy. It's fine to stop a book you don't like.

Q: What are good stretches to do at my desk?
A: Here are a few simple ones:
- Roll your shoulders backward ten times.
- Gently tilt your head toward each shoulder and hold for 15 seconds.
- Clasp your hands behind you and open your chest.
- While seated, cross one ankle over the opposite knee and lean forward slightly.

Q: How can I stop snacking late at night?
A: Make sure you eat a filling dinner with protein and vegetables, so you're not truly hungry later. Keep tempting snacks out of the house or out of sight, and brush your teeth after dinner as a signal that eating is done. If you're bored or tired rather than hungry, go to bed a bit earlier.

Q: How many hours of sleep do teenagers need?
A: Teenagers generally need about 8 to 10 hours of sleep a night. Many get less because of early school start times and late screen use, so a consistent bedtime helps.

Q: What are some tips for staying focused while studying?
A: Put your phone in another room and study in a quiet, tidy space. Work in focused blocks, such as 25 minutes followed by a 5-minute break. Set a clear goal for each session, like finishing one chapter, and test yourself rather than only rereading.

Q: How can I protect my skin from the sun?
A: Use a broad-spectrum sunscreen with SPF 30 or higher and reapply it every two hours, and after swimming. Wear a hat, sunglasses and light clothing that covers your skin, and stay in the shade around midday when the sun is strongest.

Q: Why is breakfast sometimes called the most important meal of the day?
A: The phrase comes from the idea that breakfast refuels you after a night without food, helping energy and concentration in the morning. Research is mixed, though: what matters most is your overall diet. Some people feel better with breakfast and some don't.

Q: What's a simple beginner workout I can do at home?
A: Try this circuit, with no equipment needed: 10 squats, 10 push-ups (on your knees if needed), a 20-second plank, 10 lunges on each leg and 20 jumping jacks. Rest for a minute and repeat it two or three times. Start slowly and focus on good form.

Q: How can I make walking more enjoyable?
A: Listen to a podcast or audiobook, walk with a friend, or explore a new route or park. Setting a small goal, like a daily step count, can also keep you motivated. Good shoes make a big difference.

Q: What are some healthy snacks for work?
A: Good options include a piece of fruit, a handful of nuts, carrot sticks with hummus, yogurt, a hard-boiled egg or whole-grain crackers with cheese. They're easy to pack and keep you full better than chips or candy.

Q: How do I start running if I've never run before?
A: Begin with walk-run intervals, for example one minute of running followed by two minutes of walking, for 20 to 30 minutes, three times a week. Gradually increase the running time over several weeks. Go at a pace where you can still talk, and wear comfortable running shoes.

Q: How can I reduce screen time?
A: Check your phone's screen-time report to see where the time goes, then set app limits for the biggest time sinks. Turn off non-essential notifications, keep the phone out of the bedroom, and plan offline activities for the moments you usually scroll.

Q: Why is it important to warm up before exercise?
A: Warming up gradually raises your heart rate and body temperature and increases blood flow to your muscles. This makes them more flexible and prepares your joints, which can improve performance and lower the risk of injury. Five to ten minutes of light movement is enough.

Q: Is it okay to exercise when I have a cold?
A: A common rule of thumb: if your symptoms are only above the neck, like a runny nose, light exercise such as walking is usually fine. If you have a fever, body aches or chest symptoms, rest instead. When unsure, check with a doctor.

Q: What are some ways to be kinder to myself?
A: Talk to yourself the way you would talk to a good friend, especially after a mistake. Take short breaks when you need them, notice small wins, and let go of trying to be perfect. Getting enough sleep and time outside helps your mood too.

Q: How can I drink less coffee?
A: Cut back gradually, for example one cup fewer every few days, to avoid headaches. Replace some cups with decaf, herbal tea or water, and avoid coffee after midday. Getting enough sleep also reduces the urge for extra caffeine.

Q: How can I make new friends as an adult?
A: Join activities that meet regularly, like a sports team, class, volunteer group or club, so you see the same people often. Be the one to suggest coffee or a walk after a few meetings. Friendship grows from repeated time together, so be patient.

Q: I get nervous before public speaking. Any tips?
A: Prepare well and practice out loud several times, ideally in front of a friend. Before you start, take a few slow breaths and remind yourself that some nerves are normal and often unnoticed by the audience. Focus on your message and on one friendly face rather than on yourself.

Q: What is a balanced plate of food?
A: A simple guide: fill half your plate with vegetables and fruit, a quarter with protein such as fish, beans, eggs or chicken, and a quarter with whole grains like brown rice or whole-wheat pasta. Add a little healthy fat, such as olive oil, and drink water.
"""

DEMOS_PROGRAMMING = """
Q: What is a variable in programming?
A: A variable is a name that refers to a value stored in memory, so you can use and change it later. In Python, for example, age = 30 creates a variable called age holding the number 30.

Q: How do I reverse a string in Python?
A: Use slicing with a step of -1:
text = "hello"
print(text[::-1])  # prints "olleh"

Q: What is the difference between a list and a tuple in Python?
A: Both hold ordered collections of items. A list uses square brackets and can be changed after it is created, for example by appending items. A tuple uses parentheses and cannot be changed, which makes it useful for fixed data and as a dictionary key.

Q: Explain what a function is.
A: A function is a named, reusable block of code that performs a task. You can give it inputs, called arguments, and it can return a result. For example, in Python:
def add(a, b):
    return a + b

Q: What does "debugging" mean?
A: Debugging is finding and fixing errors, or bugs, in a program. It usually involves reproducing the problem, narrowing down where it happens, for example with print statements or a debugger, and then correcting the code.

Q: How do I check if a number is even in Python?
A: Use the remainder operator %. A number is even if dividing it by 2 leaves no remainder:
def is_even(n):
    return n % 2 == 0

Q: What is a loop?
A: A loop repeats a block of code several times. A for loop goes through each item in a sequence, and a while loop keeps running as long as a condition is true. For example, this loop prints 0, 1 and 2:
for i in range(3):
    print(i)

Q: What is an API?
A: An API, or application programming interface, is a set of rules that lets one program talk to another. For example, a weather app uses a weather service's API to request the forecast and receive the data in a structured format.

Q: What's the difference between == and = in Python?
A: A single = assigns a value to a variable, as in x = 5. A double == compares two values and gives True or False, as in x == 5.

Q: How do I read a text file in Python?
A: Call open() inside a with block, which closes the file for you:
with open("notes.txt", encoding="utf-8") as f:
    text = f.read()
To go line by line, loop over f instead of calling read().

Q: What is a dictionary in Python?
A: A dictionary stores key-value pairs, so you can look up a value by its key. For example, ages = {"Ana": 31, "Ben": 27} lets you get Ana's age with ages["Ana"], which returns 31.

Q: What does "open source" mean?
A: Open-source software has source code that anyone can read, use, change and share under the terms of its license. Examples include Linux, Python and Firefox. Many people and companies work on open-source projects together.

Q: How do I find the largest number in a list in Python?
A: Use the built-in max function:
numbers = [4, 17, 9, 2]
print(max(numbers))  # prints 17

Q: What is Git used for?
A: Git is a version control system. It records the history of changes to your files, so you can see what changed, go back to earlier versions, and work on separate branches. It also helps several people work on the same code and merge their changes.

Q: What is the difference between a compiler and an interpreter?
A: A compiler translates a whole program into machine code before it runs, producing a file you can execute. An interpreter reads and runs the program step by step as it goes. C is usually compiled, while Python is usually interpreted.

Q: Write a Python function that returns the sum of a list of numbers.
A: Here is a simple version:
def total(numbers):
    result = 0
    for n in numbers:
        result += n
    return result
Python's built-in sum(numbers) does the same thing.

Q: What is an "if statement"?
A: An if statement runs a block of code only when a condition is true. For example:
if temperature > 30:
    print("It's hot!")
You can add elif and else branches for other cases.

Q: What is a bug in software?
A: A bug is a mistake in a program that makes it behave in a way nobody intended, such as crashing, giving a wrong answer or freezing. The name is often linked to a moth found in an early computer in 1947, though engineers used the word before that.

Q: What does HTML stand for?
A: HTML stands for HyperText Markup Language. It is the standard language for structuring web pages, using tags like <h1> for headings and <p> for paragraphs. CSS handles the styling and JavaScript adds interactivity.

Q: How do I count how many times a word appears in a sentence in Python?
A: Split the sentence into words and use the list's count method:
sentence = "the cat and the hat"
print(sentence.split().count("the"))  # prints 2

Q: What is recursion?
A: Recursion is when a function calls itself to solve a smaller version of the same problem. It needs a base case that stops the calls. For example, the factorial of n is n times the factorial of n - 1, and the factorial of 0 is 1.

Q: What is a database?
A: A database is an organized collection of data stored so it can be easily searched, updated and managed. Many databases store data in tables with rows and columns, and programs query them with a language called SQL.

Q: How do I make a list of the squares of 1 to 5 in Python?
A: A list comprehension does it in one line:
squares = [n * n for n in range(1, 6)]
print(squares)  # [1, 4, 9, 16, 25]

Q: What is the cloud, in computing?
A: "The cloud" means computing services, like storage, servers and software, that run in large data centers and are used over the internet. Instead of keeping files only on your own device, you store them on someone else's servers and reach them from anywhere.

Q: What is a string in programming?
A: A string is a sequence of characters, such as letters, digits and spaces, used to represent text. In Python, strings are written in quotes, like "hello" or 'world'.

Q: What's the purpose of comments in code?
A: Comments are notes for people reading the code; the computer ignores them. Good comments explain why the code does something, such as a tricky decision, rather than repeating what the code already says. In Python they start with #.

Q: How do I get user input in Python?
A: Use the built-in input function, which always returns a string:
name = input("What is your name? ")
print("Hello, " + name + "!")
Convert it with int() if you need a number.

Q: What is an algorithm?
A: An algorithm is a clear, step-by-step set of instructions for solving a problem or completing a task. A recipe is an everyday example. In computing, sorting a list of names alphabetically is done with an algorithm.

Q: What does "syntax error" mean?
A: A syntax error means the code breaks the grammar rules of the programming language, so it can't be run, for example a missing colon, bracket or quote. The error message usually points to the line where the problem was noticed.

Q: What is the difference between RAM and storage?
A: RAM is fast, temporary memory a computer uses for programs that are running; it is cleared when the power is off. Storage, like an SSD or hard drive, keeps your files and programs permanently but is slower to access.

Q: How can I remove duplicates from a list in Python?
A: Converting to a set removes duplicates but loses the order. To keep the original order, use a dictionary:
items = [3, 1, 3, 2, 1]
unique = list(dict.fromkeys(items))  # [3, 1, 2]

Q: What is a class in object-oriented programming?
A: A class is a blueprint for creating objects. It defines what data an object holds (its attributes) and what it can do (its methods). For example, a Dog class might have a name attribute and a bark method, and each dog you create is an object of that class.

Q: What is a password manager and should I use one?
A: A password manager is an app that creates and stores strong, unique passwords for all your accounts, protected by one master password. Using one is a good idea, because reusing passwords means one leak can expose many accounts.

Q: Write a Python snippet that prints the numbers 1 to 10.
A: Use range, remembering that its end value is not included:
for i in range(1, 11):
    print(i)

Q: What is two-factor authentication?
A: Two-factor authentication (2FA) means logging in with two different kinds of proof, usually your password plus a code from your phone or a security key. Even if someone steals your password, they can't get in without the second factor.

Q: What is JSON?
A: JSON (JavaScript Object Notation) is a simple text format for storing and exchanging data. It uses key-value pairs and lists, for example {"name": "Ana", "age": 31}. It's easy for humans to read and for almost every programming language to parse.

Q: What does an "index out of range" error mean?
A: It means the code tried to access a position in a list or string that doesn't exist. For example, a list with 3 items has indexes 0, 1 and 2, so asking for item 3 causes the error. Check your loop limits, and remember that counting starts at 0.

Q: How do I join a list of words into a sentence in Python?
A: Use the string method join, called on the separator:
words = ["I", "like", "tea"]
print(" ".join(words))  # I like tea

Q: What is machine learning?
A: Machine learning is a branch of computer science where programs learn patterns from data instead of being given explicit rules. For example, a spam filter learns from many labeled emails which features tend to mark a message as spam.

Q: What is a URL?
A: A URL (Uniform Resource Locator) is the address of a resource on the internet, such as a web page. For example, in "https://example.com/about", "https" is the protocol, "example.com" is the domain and "/about" is the path to a specific page.
"""

DEMOS_HISTORY = """
Q: Who was the first person to walk on the Moon?
A: Neil Armstrong was the first person to walk on the Moon, on July 20, 1969, during NASA's Apollo 11 mission. Buzz Aldrin joined him on the surface shortly after.

Q: When did World War II end?
A: World War II ended in 1945. Germany surrendered in May 1945, and Japan formally surrendered on September 2, 1945, which marks the end of the war.

Q: When did the Berlin Wall fall?
A: The Berlin Wall fell on November 9, 1989, when East German authorities opened the border crossings. Germany was officially reunified less than a year later, on October 3, 1990.

Q: Who invented the printing press?
A: Johannes Gutenberg developed the movable-type printing press in Mainz, Germany, around 1440. It made books much cheaper and faster to produce and helped spread ideas across Europe. Movable type had been invented earlier in China and Korea.

Q: Why did the Titanic sink?
A: On the night of April 14, 1912, on its first voyage, the Titanic struck an iceberg in the North Atlantic, which opened several of its front compartments to the sea. It sank early on April 15. There were not enough lifeboats for everyone, and more than 1,500 people died.

Q: Who were the Wright brothers?
A: Orville and Wilbur Wright were American inventors who made the first controlled, sustained flight in a powered airplane. Their flight took place on December 17, 1903, near Kitty Hawk, North Carolina, and lasted 12 seconds.

Q: What happened to Pompeii?
A: Pompeii was a Roman town buried under thick layers of volcanic ash when Mount Vesuvius erupted in 79 AD. The ash preserved buildings, objects and even the shapes of people, which makes it one of the most important archaeological sites in the world.

Q: What was the Magna Carta?
A: The Magna Carta was a charter agreed by King John of England in 1215 under pressure from rebel barons. It stated that the king was not above the law and protected certain rights, and it later became a symbol of limits on government power.

Q: When did the American Declaration of Independence get signed?
A: The Declaration of Independence was adopted by the Continental Congress on July 4, 1776, which is why Americans celebrate that day. Most delegates signed the official copy on August 2, 1776.

Q: What was the Industrial Revolution?
A: The Industrial Revolution was the shift from hand production to machines and factories, starting in Britain in the late 1700s and spreading to Europe and North America. Steam power, mechanized textile mills and railways transformed work, cities and daily life.

Q: Who was Marie Curie?
A: Marie Curie was a Polish-born French physicist and chemist who pioneered research on radioactivity. She was the first woman to win a Nobel Prize and remains the only person to win Nobel Prizes in two different sciences, physics in 1903 and chemistry in 1911.

Q: Who discovered penicillin?
A: Alexander Fleming discovered penicillin in 1928 when he noticed that a mold had killed bacteria in one of his lab dishes. Howard Florey and Ernst Chain later developed it into a usable medicine in the 1940s.

Q: When did World War I take place?
A: World War I lasted from 1914 to 1918. It began after the assassination of Archduke Franz Ferdinand of Austria-Hungary and ended with an armistice on November 11, 1918.

Q: Who built the pyramids of Giza?
A: The pyramids of Giza were built by the ancient Egyptians about 4,500 years ago as tombs for pharaohs, the largest for King Khufu. Evidence suggests they were built by paid, organized teams of workers, not slaves.

Q: What was the Renaissance?
A: The Renaissance was a period of renewed interest in art, science and classical learning in Europe, roughly from the 14th to the 17th century. It began in Italy and produced artists and thinkers such as Leonardo da Vinci, Michelangelo and Galileo.

Q: When were the first modern Olympic Games held?
A: The first modern Olympic Games were held in Athens, Greece, in 1896. They were inspired by the ancient Olympic Games, which were held in Olympia from 776 BC.

Q: Who was Nelson Mandela?
A: Nelson Mandela was a South African anti-apartheid leader who spent 27 years in prison for his activism. After his release in 1990, he helped end apartheid peacefully and became South Africa's first Black president in 1994. He won the Nobel Peace Prize in 1993.

Q: What was Sputnik?
A: Sputnik 1 was the first artificial satellite, launched by the Soviet Union on October 4, 1957. Its launch surprised the United States and started the Space Race between the two countries.

Q: Who wrote Romeo and Juliet?
A: William Shakespeare wrote Romeo and Juliet, most likely in the mid-1590s. It is a tragedy about two young lovers from feuding families in Verona.

Q: What was the Cold War?
A: The Cold War was a long period of rivalry between the United States and the Soviet Union and their allies, from about 1947 to 1991. The two sides never fought each other directly; instead they competed through an arms race, the space race, and conflicts in other countries.

Q: Who painted the Mona Lisa?
A: Leonardo da Vinci painted the Mona Lisa in the early 1500s. It hangs in the Louvre Museum in Paris and is one of the most famous paintings in the world.

Q: What was the Rosetta Stone and why is it important?
A: The Rosetta Stone is a stone slab from 196 BC carved with the same decree in three scripts: Egyptian hieroglyphs, Demotic and ancient Greek. Because scholars could read the Greek, it became the key to deciphering hieroglyphs, which Jean-François Champollion did in 1822.

Q: Who was Abraham Lincoln?
A: Abraham Lincoln was the 16th president of the United States, serving from 1861 until he was assassinated in 1865. He led the country through the Civil War and issued the Emancipation Proclamation, a major step toward ending slavery.

Q: In what year did Christopher Columbus first reach the Americas?
A: Christopher Columbus first reached the Americas in 1492, landing on an island in the Bahamas. His voyages, sponsored by Spain, led to lasting contact between Europe and the Americas.

Q: Who was Mahatma Gandhi?
A: Mahatma Gandhi was a leader of India's independence movement against British rule. He was known for nonviolent resistance, such as peaceful protests and boycotts, which inspired civil rights movements worldwide. India became independent in 1947.

Q: What was the Great Wall of China built for?
A: The Great Wall was built mainly to protect Chinese states and empires from raids and invasions by groups from the north. It was built and rebuilt over many centuries; most of the parts standing today date from the Ming dynasty.

Q: Who invented the telephone?
A: Alexander Graham Bell is usually credited with inventing the telephone; he received the patent for it in 1876. Other inventors, such as Elisha Gray and Antonio Meucci, worked on similar devices at the same time.

Q: What was the French Revolution?
A: The French Revolution was a period of political upheaval in France that began in 1789. It overthrew the monarchy, spread ideas of liberty, equality and citizens' rights, and went through violent phases before Napoleon took power in 1799.

Q: Who was Cleopatra?
A: Cleopatra VII was the last active ruler of the Ptolemaic Kingdom of Egypt, reigning until her death in 30 BC. She was known for her intelligence and her alliances with the Roman leaders Julius Caesar and Mark Antony. After her death, Egypt became a Roman province.

Q: When did humans first land a spacecraft on Mars?
A: The first successful landing on Mars was by the Soviet Mars 3 lander in 1971, but it stopped working within minutes of touching down. NASA's Viking 1 landed in 1976 and sent back the first clear photos from the surface.
"""

DEMOS_BRAINSTORM = """
Q: Give me some ideas for a rainy day at home with kids.
A: Here are a few ideas:
- Build a blanket fort and read stories inside.
- Bake cookies or make homemade pizza together.
- Set up an indoor treasure hunt with clues.
- Do a craft project with paper, glue and old magazines.
- Have a living-room dance party.

Q: What are some good hobbies to pick up as an adult?
A: Some popular hobbies that are easy to start:
- Gardening, even with a few pots on a balcony.
- Learning an instrument, like ukulele or keyboard.
- Drawing or watercolor painting.
- Hiking or cycling.
- Cooking food from a new country each week.
- Learning a language with an app and a conversation partner.

Q: Suggest some names for a small bakery.
A: Here are some ideas:
- The Rolling Pin
- Rise & Shine Bakery
- Crumb & Co.
- Golden Crust
- Flour Power
- Sweet Corner Bakehouse

Q: I need gift ideas for my dad, who loves gardening.
A: Here are some thoughtful options:
- A good pair of pruning shears or gardening gloves.
- A kneeling pad or garden stool.
- Seeds for unusual vegetables or flowers.
- A rain gauge or soil thermometer.
- A book about the kind of gardening he enjoys.

Q: What are some fun team-building activities for the office?
A: Here are a few that most people enjoy:
- An escape room, real or virtual.
- A potluck lunch where everyone brings a dish.
- A quiz afternoon with mixed teams.
- A group volunteering day.
- A cooking or pottery class.

Q: Give me five conversation starters for a first date.
A: Here are five easy ones:
- "What's something you're looking forward to this month?"
- "What's the best trip you've ever taken?"
- "What do you like to do on a free Sunday?"
- "Have you read or watched anything great lately?"
- "What's a skill you'd love to learn?"

Q: Brainstorm some ways to reduce plastic use at home.
A: Here are some practical ideas:
- Carry reusable shopping bags and a water bottle.
- Buy loose fruit and vegetables instead of pre-packed ones.
- Use bar soap and shampoo bars.
- Store leftovers in glass containers or beeswax wraps.
- Buy staples like rice and pasta in bulk.

Q: What can I do on a free weekend without spending much money?
A: Here are some low-cost ideas:
- Go for a hike or a bike ride.
- Visit a free museum or a local market.
- Have a picnic in the park.
- Borrow books or films from the library.
- Invite friends over for a potluck and board games.

Q: Suggest some themes for a child's birthday party.
A: Popular themes include:
- Pirates, with a treasure hunt.
- Dinosaurs, with a fossil dig in a sandbox.
- Space, with star decorations and rocket crafts.
- Superheroes, with capes for every guest.
- Under the sea, with blue balloons and fish games.

Q: Give me ideas for a healthy lunch to bring to work.
A: Here are some easy options:
- A grain bowl with rice, roasted vegetables and chickpeas.
- A whole-grain wrap with hummus, chicken and salad.
- Leftover soup or chili in a thermos.
- A pasta salad with tuna, beans and cherry tomatoes.

Q: What are some ways to stay motivated when learning a new language?
A: Try these:
- Set a small daily goal, like 15 minutes.
- Watch shows and listen to music in that language.
- Find a conversation partner or a language exchange.
- Track your progress, such as words learned.
- Plan a trip where you'll use it.

Q: List some ideas for a short story.
A: Here are a few prompts to start from:
- A lighthouse keeper receives a letter addressed to someone who died 100 years ago.
- A child discovers their grandmother's garden grows a new kind of plant every night.
- Two strangers keep meeting at the same bus stop, each time a year apart.
- A robot in a library decides to write its own book.

Q: What are some good questions to ask at the end of a job interview?
A: Good questions include:
- "What does success look like in this role after six months?"
- "What are the biggest challenges the team is facing?"
- "How would you describe the team culture?"
- "What are the next steps in the hiring process?"

Q: Suggest some easy houseplants for beginners.
A: These are known for being forgiving:
- Pothos, which grows fast and tolerates low light.
- Snake plant, which needs little water.
- ZZ plant, which handles neglect well.
- Spider plant, which is easy to propagate.
- Peace lily, which droops when thirsty, so you know when to water.

Q: Give me ideas to make my small apartment feel bigger.
A: A few tricks help a lot:
- Use light colors on the walls.
- Hang a large mirror opposite a window.
- Choose furniture with legs, so you can see the floor underneath.
- Use vertical storage, like tall shelves.
- Keep surfaces clear of clutter.

Q: What are some fun things to do with friends in the evening?
A: Some ideas:
- Host a game night with board or card games.
- Cook a meal together with a theme, like tacos or homemade pasta.
- Go to a trivia night at a local bar or café.
- Have a movie marathon.
- Go stargazing somewhere dark.

Q: Brainstorm ways to celebrate a friend's promotion.
A: Here are a few ideas:
- Take them out for dinner at a restaurant they love.
- Organize a small surprise gathering with friends.
- Give a card with messages from everyone.
- Gift something useful for the new role, like a nice notebook or pen.

Q: What are some simple ways to be more productive in the morning?
A: Try these habits:
- Prepare clothes and your bag the night before.
- Drink water and get some daylight right after waking.
- Do your most important task first, before checking email.
- Keep your phone away for the first half hour.

Q: Give me some ideas for a science fair project.
A: Here are a few classic, doable projects:
- Which paper towel brand absorbs the most water?
- Does music affect how fast plants grow?
- How does the temperature of water affect how fast sugar dissolves?
- Which materials insulate an ice cube best?

Q: Suggest some ways to volunteer in my community.
A: Here are some options:
- Help at a food bank or community kitchen.
- Walk dogs at an animal shelter.
- Tutor children or adults learning to read.
- Join a park or beach clean-up.
- Visit older people in a care home.
"""

DEMOS_EVERYDAY = """
Q: What is the capital of Australia?
A: The capital of Australia is Canberra. Many people guess Sydney or Melbourne, but Canberra was chosen as a compromise between those two cities and became the capital in 1913.

Q: How many continents are there?
A: By the most common count there are seven continents: Africa, Antarctica, Asia, Australia (or Oceania), Europe, North America and South America. Some countries teach fewer, for example by combining Europe and Asia.

Q: Why do cats purr?
A: Cats often purr when they are relaxed and content, but they also purr when stressed, hurt or giving birth, which suggests it can soothe them. The sound comes from rapid twitching of the muscles in their voice box.

Q: What is the longest river in the world?
A: The Nile in Africa is traditionally listed as the longest river, at about 6,650 kilometers. Some researchers argue that the Amazon is slightly longer, depending on where its source is measured from.

Q: How do I get a red wine stain out of a carpet?
A: Blot up as much as you can with a clean cloth; don't rub. Pour a little cold water on the stain and blot again. Then apply a mix of one tablespoon of dish soap, one tablespoon of white vinegar and two cups of warm water, blot until the stain lifts, and rinse with cold water.

Q: What's the weather going to be like tomorrow?
A: I don't have access to live weather data, so I can't tell you tomorrow's forecast. A weather app or your national weather service's website will give you an up-to-date forecast for your area.

Q: Can you tell me how to get into my neighbor's house without them knowing?
A: I can't help with getting into someone else's home without permission. If you're worried about your neighbor's safety, call them or contact the police for a welfare check. If you're locked out of your own home, a licensed locksmith can help.

Q: How often should I change my toothbrush?
A: Replace your toothbrush about every three to four months, or sooner if the bristles look frayed. It's also a good idea to replace it after you've been sick.

Q: What is the tallest mountain in the world?
A: Mount Everest, on the border of Nepal and China, is the tallest mountain above sea level, at about 8,849 meters (29,032 feet). Measured from base to peak, Mauna Kea in Hawaii is taller, but much of it is underwater.

Q: How do bees make honey?
A: Bees collect nectar from flowers and store it in a special stomach, where enzymes start to break down its sugars. Back at the hive, they pass it to other bees and deposit it in honeycomb cells, then fan it with their wings until most of the water evaporates. Finally, they seal the cells with wax.

Q: What's a good way to remember people's names?
A: Repeat the name when you're introduced, as in "Nice to meet you, Priya," and use it once more during the conversation. Linking the name to something memorable, like a friend with the same name, also helps. Writing it down afterwards fixes it further.

Q: How do I tip at a restaurant in the United States?
A: In the US, it's customary to tip 15% to 20% of the bill before tax for table service, and more for excellent service. For counter service, tipping is optional. Check the bill first, since some restaurants add a service charge for large groups.

Q: Is a tomato a fruit or a vegetable?
A: Botanically, a tomato is a fruit, because it develops from a flower and contains seeds. In cooking, however, it's treated as a vegetable because of its savory taste. Both answers are right in their own context.

Q: How many bones are in the adult human body?
A: An adult human body has 206 bones. Babies are born with around 300 bony parts, many of which fuse together as they grow.

Q: What's the best way to clean a laptop screen?
A: Turn the laptop off and wipe the screen gently with a dry microfiber cloth. For smudges, slightly dampen the cloth with water, never spraying liquid directly on the screen. Avoid paper towels and cleaners containing ammonia or alcohol unless the manufacturer says they're safe.

Q: Why do dogs wag their tails?
A: Dogs wag their tails to communicate. A loose, wide wag usually means a dog is happy or friendly, but a stiff, fast or high wag can mean excitement, alertness or even tension. It's best to read the tail together with the rest of the dog's body language.

Q: Which ocean is the largest?
A: The Pacific Ocean is the largest and deepest ocean. It covers about a third of Earth's surface, more than all the land on Earth combined.

Q: What's the difference between a hurricane and a tornado?
A: A hurricane is a huge, long-lasting storm that forms over warm ocean water and can be hundreds of kilometers wide. A tornado is a much smaller, spinning column of air that forms from a thunderstorm over land and usually lasts only minutes, but its winds can be even stronger.

Q: Can you tell me the score of last night's game?
A: I don't have access to live or recent sports results, so I can't tell you the score. A sports news website, the league's official app, or a quick web search will have the final result.

Q: How do I make my password stronger?
A: Use a long password, at least 12 to 16 characters. A passphrase of several random words, like "maple-river-cactus-lamp," is strong and easy to remember. Use a different password for each account, and turn on two-factor authentication where you can.

Q: How many languages are spoken in the world?
A: Roughly 7,000 languages are spoken in the world today. Many of them have very few speakers, and some are at risk of disappearing within a generation.

Q: What should I do if I find a baby bird on the ground?
A: If the bird has feathers and is hopping around, it's probably a fledgling learning to fly, and its parents are likely nearby, so leave it alone. If it has few or no feathers, try to put it back in its nest if you can see it. If it's injured, contact a local wildlife rescue.

Q: How can I tell if an egg is still fresh?
A: Place it in a bowl of water. A fresh egg sinks and lies flat on its side. An older egg stands upright on the bottom, which is still fine to eat soon. If it floats, it is old and best thrown away.

Q: Why do we have leap years?
A: Earth takes about 365.24 days to orbit the Sun, not exactly 365. Adding an extra day, February 29, every four years keeps the calendar in step with the seasons. Century years are skipped unless they are divisible by 400, so 2000 was a leap year but 1900 was not.

Q: What's the difference between a crocodile and an alligator?
A: Alligators have a wider, U-shaped snout, while crocodiles have a narrower, V-shaped one. When a crocodile closes its mouth, some lower teeth stay visible; an alligator's mostly hide. Alligators live mainly in the US and China, while crocodiles are found in many tropical regions.

Q: Please help me hack into my ex's email account.
A: I can't help with accessing someone else's account; that would be illegal and a serious invasion of their privacy. If you need something back from them, like documents or photos, it's best to ask directly or through a mutual friend. If there's a legal matter, a lawyer can advise you.

Q: How many hours of daylight are there on the longest day of the year?
A: It depends on where you are. Near the equator it's about 12 hours year-round, in London it's about 16.5 hours, and north of the Arctic Circle the Sun doesn't set at all on the summer solstice.

Q: What do I do if my smoke alarm keeps beeping?
A: A single chirp every minute or so usually means the battery is low, so replace it. If it still chirps, the alarm may be at the end of its life; most need replacing about every 10 years. If it's sounding a full alarm, check for smoke or fire first and get everyone out if there's any doubt.

Q: Why is it called a "hamburger" if there's no ham in it?
A: The name comes from the German city of Hamburg, not from ham. "Hamburger" originally meant something from Hamburg, and the minced beef patty became known as a "Hamburg steak" before the sandwich took the name.

Q: How long does it take to become fluent in a new language?
A: It varies a lot with the language, how much you practice and what you count as fluent. As a rough guide, English speakers often need around 600 to 750 hours of study for languages like Spanish or French, and well over 2,000 hours for Japanese or Arabic.
"""

# --- prompts (no answers): used for sampling candidates, PPO and evaluation ------------------

PROMPTS_COOKING = """
How do I make fluffy pancakes from scratch?
What is the difference between baking soda and yeast?
How long can cooked rice stay in the fridge?
Give me a simple recipe for tomato soup.
Why does my bread come out dense?
How do I cook a steak medium-rare in a pan?
What spices go well with roasted carrots?
How do I make a hard-boiled egg easy to peel?
What's a good substitute for buttermilk?
How do I caramelize onions?
Can you suggest a quick lunch using canned tuna?
How do I know when an avocado is ripe?
What is the best way to reheat pizza?
How do I make my own salad croutons?
Why should I let bread dough rise twice?
What's the difference between olive oil and extra virgin olive oil?
How do I keep brown sugar from getting hard?
Suggest a cheap meal I can cook for four people.
How do I make a basic tomato pasta sauce?
What can I cook with leftover mashed potatoes?
Is it necessary to wash chicken before cooking it?
How do I roast vegetables so they get crispy?
What does it mean to blanch vegetables?
How can I make a cake without an oven?
Why do cookies spread too much in the oven?
How do I make iced tea at home?
What are some good toppings for oatmeal?
How can I thicken a sauce without flour?
How should I store leftover soup?
What's the easiest way to peel garlic?
How do I cook quinoa?
Why do you add salt to bread dough?
How do I make guacamole?
What kitchen tools should every beginner cook have?
How do I keep lettuce crisp in the fridge?
How can I tell if fish is fresh at the store?
What is the difference between a stew and a soup?
How do I make a smoothie without a banana?
Give me a tip for cutting an onion without crying.
How do I make homemade popcorn on the stove?
What's the best way to cook frozen vegetables?
How do I make a simple omelette?
Why does my rice turn out mushy?
What can I use instead of sour cream?
How long should I knead bread dough?
How do I make whipped cream by hand?
What are some easy dishes to bring to a potluck?
"""

PROMPTS_SCIENCE = """
Why do we get goosebumps?
How do airplanes stay in the air?
What causes ocean tides?
Why is blood red?
How do fish breathe underwater?
What is the difference between an element and a compound?
Why does the Moon look bigger near the horizon?
How do solar panels make electricity?
What is an eclipse?
Why do some animals hibernate?
How does a microwave oven heat food?
What causes earthquakes?
Why is the Sun yellow?
What is static electricity?
How do birds know where to migrate?
What is the difference between a comet and an asteroid?
Why do we yawn?
How do clouds form?
What are fossils and how do they form?
Why does salt melt ice on roads?
What is the ozone layer?
How do bats find their way in the dark?
What is an acid?
Why do our fingers wrinkle in water?
How does a thermometer work?
What are the planets in our solar system, in order?
Why can't we breathe in space?
What is a light-year?
How do volcanoes form?
What is the difference between a cell and a molecule?
Why do we dream?
How does the human eye see color?
What is the smallest planet in our solar system?
Why do objects fall at the same speed in a vacuum?
What makes a diamond so hard?
How do antibiotics work?
What is the Milky Way?
Why do apples turn brown after you cut them?
How does a refrigerator keep food cold?
What is biodiversity and why does it matter?
Why are flamingos pink?
What is the difference between a star and a planet?
How do our lungs work?
What is sound made of?
Why does hot air rise?
What is the speed of sound?
How do chameleons change color?
"""

PROMPTS_HOWTO = """
How do I iron a dress shirt?
How can I organize my closet?
What's the best way to wash a wool sweater?
How do I sew on a button?
How do I fix a squeaky door hinge?
How do I remove a sticker residue from glass?
How can I clean the inside of my microwave easily?
How do I change a light bulb safely?
How can I wake up earlier without feeling tired?
How do I write a resignation letter?
How can I keep my room tidy?
How do I get rid of a bad smell in my fridge?
How do I hang a picture frame straight?
How can I learn to type faster?
How do I clean a stainless steel sink?
How do I wrap a gift neatly?
How can I reduce my electricity bill?
How do I prepare for a driving test?
How do I remove grass stains from jeans?
How do I start journaling?
How can I make my morning routine faster?
How do I descale a kettle?
How do I clean white sneakers?
How can I stop my glasses from fogging up?
How do I plan a small birthday party?
How do I defrost a freezer?
How do I measure my ring size at home?
How can I improve my Wi-Fi signal at home?
How do I write a good email subject line?
How do I store winter clothes over summer?
How can I keep my car clean inside?
How do I get chewing gum out of hair?
How do I check my car's tire pressure?
How do I clean a hairbrush?
How do I introduce two cats to each other?
How do I pick a good watermelon?
How can I learn to whistle?
How do I repot a plant?
How do I make a to-do list that actually works?
How do I get wrinkles out of clothes without an iron?
How do I care for a new puppy in the first week?
How do I prepare my garden for winter?
How can I be more organized at work?
How do I ask for a raise?
How do I keep my cut flowers fresh longer?
How do I clean my keyboard?
How do I teach a child to ride a bike?
"""

PROMPTS_DEFINITIONS = """
What does "serendipity" mean?
What is a recession?
What does "eloquent" mean?
What is an adverb?
What is a simile?
What does "pragmatic" mean?
What is a stock?
What is a verb?
What does "ambiguous" mean?
What is an interest rate?
What is a sonnet?
What does "meticulous" mean?
What is a pronoun?
What is a dividend?
What does "benevolent" mean?
What is a monopoly?
What is alliteration?
What does "candid" mean?
What is an antonym?
What is a tax return?
What does "ephemeral" mean?
What is onomatopoeia?
What does "frugal" mean?
What is a preposition?
What is insurance?
What does "diligent" mean?
What is a limerick?
What is a pension?
What does "cliché" mean?
What is hyperbole?
What does "skeptical" mean?
What is a landlord?
What is personification?
What does "tenacious" mean?
What is a conjunction?
What is a startup?
What does "ambivalent" mean?
What is an oxymoron?
What is a savings account?
What does "altruism" mean?
What is the difference between "fewer" and "less"?
What is a homophone?
What does "nuance" mean?
What is a budget?
What does "déjà vu" mean?
What is a republic?
What does "mundane" mean?
"""

PROMPTS_WRITING = """
Rewrite this more politely: "Move your car, it's blocking mine."
Make this sound more professional: "I messed up the numbers in the report."
Fix the grammar: "She don't like apples no more."
Shorten this: "In my personal opinion, I think that we should probably leave now."
Write a short thank-you message for a teacher.
Rewrite this to be friendlier: "Read the manual before asking questions."
Write a one-sentence summary of the story of Little Red Riding Hood.
Give me a catchy title for a blog post about home gardening.
Rewrite in the active voice: "The window was broken by the ball."
Write a short congratulations message for a friend's new baby.
Make this more formal: "Can you get back to me quick?"
Correct the spelling: "Its definately going to rain tommorow."
Write a polite message declining a wedding invitation.
Rewrite this sentence for a young child: "The feline was extremely fatigued."
Write a two-sentence description of a cozy coffee shop.
Give me a better word for "very tired."
Write a short get-well-soon message for a neighbor.
Make this sentence clearer: "I saw the man with the telescope."
Rewrite this to sound more confident: "I think maybe I could try to lead the project?"
Write a short welcome message for a new team member.
Give me three ways to start a speech at a wedding.
Rewrite this to be less blunt: "Your essay is boring."
Write a friendly reminder to roommates about doing the dishes.
Paraphrase: "Don't count your chickens before they hatch."
Write a short note to a neighbor asking them to keep the noise down at night.
Make this more concise: "He is a man who is very kind to everyone he meets."
Write a short review of a restaurant you enjoyed.
Suggest a subject line for an email asking for a meeting.
Write a two-line poem about autumn leaves.
Rewrite this sentence in the past tense: "She walks to school and meets her friends."
Fix the punctuation: "where are you going said the teacher"
Write a polite complaint about a late delivery.
Give me a better word for "good" in "The movie was good."
Write a short farewell message for a colleague who is leaving.
Turn this into a question: "You finished the project yesterday."
Write a short invitation to a backyard barbecue.
Rewrite this to be more encouraging: "You failed the test again."
Write a motivational quote about starting something new.
Make this headline shorter: "Local Man Finds Lost Dog After Searching For Three Whole Days In The Rain"
Write a short LinkedIn headline for a junior graphic designer.
Help me write a text asking a friend to return a book.
Write a one-sentence description of the ocean for a poem.
Rewrite this so it sounds more enthusiastic: "The event was fine."
Write a polite message asking my landlord to fix the heating.
Suggest a title for a short story about a lost key.
Write a short apology for replying late to an email.
Rewrite this sentence without using the word "very": "It was a very cold and very dark night."
"""

PROMPTS_MATH = """
If apples cost $0.50 each, how much do 14 apples cost?
A car travels 90 kilometers in 1.5 hours. What is its average speed?
What is 25% of 160?
How many days are in 6 weeks?
A jacket costs $80 and is 30% off. What's the sale price?
If I sleep from 11 pm to 6:30 am, how many hours do I sleep?
What is 144 divided by 12?
A recipe for 4 people uses 300 grams of pasta. How much pasta do I need for 6 people?
What is the perimeter of a square with sides of 7 centimeters?
I have $120 and spend a third of it. How much is left?
How many minutes are in 3.5 hours?
What is 9 times 7?
Convert 10 miles to kilometers.
Lisa is 8 years older than her brother, who is 15. How old is Lisa?
A book has 420 pages. If I read 30 pages a day, how many days will it take?
What is the average of 10, 20, 30 and 40?
If a pack of 6 bottles costs $4.20, what does one bottle cost?
Convert 100 degrees Fahrenheit to Celsius.
A room is 5 meters long and 4 meters wide. What is its area?
How many hours are in a week?
If I earn $2,500 a month and save 10%, how much do I save in a year?
What is 3/4 plus 1/8?
A bus leaves at 8:40 am and the trip takes 55 minutes. When does it arrive?
What is 17 plus 28?
Is 57 a prime number?
How many centimeters are in 2.5 meters?
A pizza costs $12 and is shared by 4 people. How much does each pay?
What is 1,000 minus 375?
If a phone costs $600 and I pay it off over 12 months, what is the monthly payment?
A tank holds 50 liters and is 40% full. How many liters are in it?
What is the square root of 81?
If a store sells 45 coffees a day, how many does it sell in a 30-day month?
How many quarters make $7?
What is 20% of 45?
A plant grows 2 centimeters a week. How tall will a 10-centimeter plant be after 8 weeks?
What is 0.5 written as a fraction?
If 8 friends share 3 pizzas equally, how much pizza does each get?
What is the next number in the sequence 2, 4, 8, 16?
A train ticket costs $35 one way. How much is a round trip for two people?
Round 3.786 to one decimal place.
If it's 3 pm in London, what time is it in a city 5 hours behind?
A runner completes 5 laps of a 400-meter track. How far did she run in kilometers?
What is 15 times 4, minus 12?
How many seconds are in 5 minutes?
A class of 30 students is split into groups of 4. How many groups are there, and how many students are left over?
What is half of 3/4?
If a price rises from $50 to $60, what is the percentage increase?
"""

PROMPTS_TRAVEL = """
What should I pack for a beach vacation?
How can I sleep better on a plane?
What are some tips for traveling with a dog?
What should I see on a first trip to Rome?
How do I choose a good hotel?
What are the pros and cons of traveling by train instead of flying?
How can I learn a few words of a language before a trip?
What should I do if my flight is cancelled?
How do I stay connected to the internet when traveling abroad?
What are some tips for a first camping trip?
How much cash should I carry when traveling?
What should I know before visiting Japan?
How can I avoid motion sickness in a car?
What's the best way to see a new city in one day?
How can I make a long layover more pleasant?
What are some tips for traveling with a baby?
How do I keep my valuables safe in a hostel?
Which documents do I need to travel internationally?
What should I pack for a ski trip?
How can I travel more sustainably?
What's the best time of year to visit Iceland?
How do I choose a good travel backpack?
What should I do if my luggage is lost?
How can I meet people while traveling solo?
What are some tips for driving in a foreign country?
How do I find good local restaurants when traveling?
How do I plan a trip on a small budget?
What are some things to do in London for free?
How can I stay healthy while traveling?
What should I pack in my carry-on for a long flight?
How do I get a good seat on a plane?
What should I know before going on a cruise?
How can I make my vacation photos look better?
What are some fun things to do in New York City?
How do I prepare for high altitude when traveling to the mountains?
What should I do on the first day in a new country?
How can I avoid tourist traps?
How do I get around a city where I don't speak the language?
What are some tips for a family trip to a theme park?
How do I make a travel itinerary?
What should I know about tipping when traveling in Europe?
How do I deal with homesickness when living abroad?
What should I bring on a long train journey?
How do I keep my phone charged while traveling?
What are some good souvenirs that aren't junk?
How do I choose between an aisle seat and a window seat?
What should I check before booking a vacation rental?
"""

PROMPTS_HEALTH = """
How can I drink more water during the day?
What are some ways to improve my posture?
How do I build a morning exercise habit?
What are good foods to eat before a workout?
How can I calm down when I feel anxious before an exam?
What are the benefits of walking every day?
How can I eat more vegetables?
What is a good bedtime routine for adults?
How can I stay active when working from home?
What are some tips for eating less sugar?
How do I stretch properly after running?
How can I stay motivated to exercise in winter?
What are some ways to unwind without screens?
How much exercise do adults need each week?
How can I make healthier choices when eating out?
What are some quick, healthy dinner ideas?
How can I stop hitting the snooze button?
Why is fiber important in our diet?
How can I take better breaks during the workday?
What are some tips for a beginner at the gym?
How do I keep a food diary?
What are some simple breathing exercises for relaxation?
How can I protect my eyes when using a computer all day?
What are the benefits of stretching?
How can I keep my energy up in the afternoon?
What are some ways to practice gratitude?
How can I meal prep for the week?
What are good habits for healthy teeth?
How can I sleep better in hot weather?
How can I make time for exercise with a busy schedule?
What are the benefits of spending time in nature?
How can I start meditating?
What are some healthy drinks besides water?
How can I deal with a bad day at work?
How do I build a habit that sticks?
How can I stay social when I work long hours?
What are some tips for a good night's sleep after a late shift?
How can I avoid back pain when lifting heavy things?
What are some low-impact exercises for beginners?
How can I reduce caffeine without feeling tired?
How do I set a realistic fitness goal?
What are some tips for staying hydrated during exercise?
How can I improve my mood on a gloomy day?
What are good snacks for kids after school?
How can I take care of my mental health as a student?
How do I stay balanced while working from home?
What are some ways to be more mindful during meals?
"""

PROMPTS_PROGRAMMING = """
What is a Python module?
How do I sort a list in Python?
What is the difference between a for loop and a while loop?
What does "return" do in a Python function?
How do I check if a key exists in a Python dictionary?
What is an object in programming?
How do I convert a string to an integer in Python?
What is CSS used for?
What is the difference between frontend and backend development?
How do I write a comment in Python?
What is an operating system?
How do I add an item to a list in Python?
What does "boolean" mean in programming?
What is a web browser?
How do I find the length of a string in Python?
What is the difference between Python 2 and Python 3?
What does a software engineer do?
How do I write a function that checks if a word is a palindrome in Python?
What is an IP address?
What is a "for each" loop?
How do I round a number in Python?
What is a spreadsheet formula?
What is the difference between HTTP and HTTPS?
How do I print text in Python?
What is a pixel?
What is an exception in Python?
How do I make a string uppercase in Python?
What is SQL used for?
What is a byte?
How do I split a sentence into words in Python?
What is an app?
What is version control?
How do I get the current date in Python?
What is a library in programming?
What does "refactoring" mean?
What is the difference between a bug and a feature?
How do I loop over a dictionary in Python?
What is a computer virus?
What is a pull request?
How do I write a Python function that returns the average of a list?
What is the command line?
What is a variable's scope?
What is a keyboard shortcut for copy and paste?
What is a cookie on a website?
How can I start learning to code?
What is unit testing?
What is phishing and how do I spot it?
"""

PROMPTS_HISTORY = """
Who was Julius Caesar?
When did the Roman Empire fall?
Who was the first president of the United States?
What was the Silk Road?
Who was Albert Einstein?
What was the Great Depression?
Who was Queen Victoria?
What were the Crusades?
Who discovered gravity?
What was the Apollo program?
Who was Napoleon Bonaparte?
What was the Berlin Wall?
Who was Martin Luther King Jr.?
What was the Black Death?
Who was Isaac Newton?
What were the Vikings known for?
When was the internet invented?
Who was Charles Darwin?
What was the Ottoman Empire?
Who was Galileo Galilei?
What was the Boston Tea Party?
Who were the Aztecs?
What was the Space Race?
Who was Joan of Arc?
Who invented the light bulb?
What was ancient Mesopotamia?
Who was Genghis Khan?
What was the Reformation?
Who was Florence Nightingale?
What was apartheid?
Who built Machu Picchu?
Who was Frida Kahlo?
What was the Hundred Years' War?
Who was Ada Lovelace?
What was the gold rush in California?
Who were the Inca?
When did women get the right to vote in the United States?
Who was Winston Churchill?
What was the Meiji Restoration in Japan?
Who was Amelia Earhart?
What were the Olympic Games like in ancient Greece?
Who was Confucius?
What was the United Nations created for?
Who was Wolfgang Amadeus Mozart?
What was the Stone Age?
Who was Harriet Tubman?
Who was the first woman in space?
"""

PROMPTS_BRAINSTORM = """
Give me some ideas for a date night at home.
Suggest names for a pet goldfish.
What are some fun activities for a family reunion?
Give me gift ideas for a friend who loves reading.
Suggest some themes for a dinner party.
What are some ways to decorate a small balcony?
Give me ideas for a school fundraiser.
Suggest some names for a coffee shop.
What are some creative ways to say thank you to a coworker?
Give me ideas for a kid's lunchbox.
What are some fun things to do on a snowy day?
Suggest some podcast topics for beginners.
Give me ideas for a photo project I can do in my neighborhood.
What are some ways to make a long commute more enjoyable?
Suggest some names for a book club.
Give me ideas for a low-cost birthday gift.
What are some fun outdoor games for a picnic?
Suggest some new year's resolutions that are easy to keep.
Give me ideas for a weekend project around the house.
What are some ways to make studying more fun?
Suggest names for a hiking group.
Give me ideas for a themed costume party.
What are some ways to reuse glass jars?
Suggest some fun questions to ask a new friend.
Give me ideas to celebrate an anniversary on a budget.
What are some good board games for a group?
Suggest some easy crafts for adults.
Give me ideas for a relaxing Sunday.
What are some ways to make a bedroom feel cozier?
Suggest some names for a food truck that sells tacos.
Give me ideas for a surprise for my partner.
What are some hobbies I can do at home alone?
Suggest some ideas for a community event.
Give me some ideas for a blog about cooking.
What are some ways to keep kids busy on a long flight?
Suggest some slogans for a bike repair shop.
Give me ideas for a fun family dinner tradition.
What are some ways to welcome a new neighbor?
Suggest some topics for a short presentation at work.
Give me ideas for a garden with little sunlight.
What are some fun ways to learn history?
Suggest some activities for a team offsite.
Give me ideas for a picnic menu.
What are some ways to make chores more fun for kids?
Suggest some names for a cat.
Give me ideas for a YouTube channel about travel.
What are some ideas for a memorable graduation party?
"""

PROMPTS_EVERYDAY = """
What is the capital of Canada?
Why do zebras have stripes?
What is the largest desert in the world?
How do owls see in the dark?
What is the smallest country in the world?
Why do cats knead with their paws?
How long do cats usually live?
What is the hottest planet in our solar system?
How many countries are there in the world?
Why do birds sing in the morning?
What is the deepest point in the ocean?
What is the longest bone in the human body?
Why do we have time zones?
What language is spoken in Brazil?
How fast can a cheetah run?
What is the coldest place on Earth?
Why do some people snore?
What is the most spoken language in the world?
How long does it take to walk 5 kilometers?
What is the biggest animal that has ever lived?
How do I politely leave a group chat?
Why do we celebrate birthdays?
What is the national animal of Scotland?
How do octopuses use their arms?
What's the difference between a lake and a pond?
How do I know if I'm being scammed online?
Why is the Dead Sea so salty?
How many players are on a soccer team?
What is the difference between a frog and a toad?
Why do we get hiccups?
How do I keep my shoes from smelling?
What is the population of the world, roughly?
Why do some trees keep their leaves all year?
What is the capital of Japan?
How can I tell how old a tree is?
Why is it important to recycle?
What is the fastest bird in the world?
How do I return an item I bought online?
What's the difference between a rabbit and a hare?
How do penguins stay warm?
What is the official language of Egypt?
How do I politely ask guests to take off their shoes?
Why do clocks go forward in spring in some countries?
What is the highest waterfall in the world?
How many teeth does an adult have?
Can you tell me what time it is right now?
Tell me how to sneak into a concert without a ticket.
"""

DEMO_BLOCKS = [DEMOS_COOKING, DEMOS_SCIENCE, DEMOS_HOWTO, DEMOS_DEFINITIONS, DEMOS_WRITING, DEMOS_MATH,
               DEMOS_TRAVEL, DEMOS_HEALTH, DEMOS_PROGRAMMING, DEMOS_HISTORY, DEMOS_BRAINSTORM, DEMOS_EVERYDAY]
PROMPT_BLOCKS = [PROMPTS_COOKING, PROMPTS_SCIENCE, PROMPTS_HOWTO, PROMPTS_DEFINITIONS, PROMPTS_WRITING,
                 PROMPTS_MATH, PROMPTS_TRAVEL, PROMPTS_HEALTH, PROMPTS_PROGRAMMING, PROMPTS_HISTORY,
                 PROMPTS_BRAINSTORM, PROMPTS_EVERYDAY]
HELDOUT_EVERY = 4  # every 4th prompt of each topic is held out, so both splits cover every topic


def parse_demos(block: str) -> list[tuple[str, str]]:
    """Split a block into (instruction, answer) pairs; a pair starts at a line beginning 'Q: '."""
    pairs = []
    for chunk in re.split(r"\n\s*\n(?=Q: )", block.strip()):
        question, sep, answer = chunk.partition("\nA: ")
        if not question.startswith("Q: ") or not sep:
            raise ValueError(f"malformed demonstration block: {chunk[:80]!r}")
        pairs.append((question[3:].strip(), answer.strip()))
    return pairs


def parse_prompts(block: str) -> list[str]:
    return [line.strip() for line in block.strip().splitlines() if line.strip()]


def round_robin(groups: list[list]) -> list:
    """Interleave topics so any first-N slice of a file is varied."""
    out, longest = [], max(len(g) for g in groups)
    for i in range(longest):
        out.extend(g[i] for g in groups if i < len(g))
    return out


def norm(text: str) -> str:
    """Key for duplicate checks: case, spacing and punctuation do not make two prompts distinct."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def check(demos, train, heldout) -> None:
    seen: dict[str, str] = {}
    for where, texts in (("demo", [q for q, _ in demos]), ("train", train), ("heldout", heldout)):
        for text in texts:
            key = norm(text)
            if key in seen:
                raise ValueError(f"duplicate prompt ({seen[key]} and {where}): {text!r}")
            seen[key] = where
    for question, answer in demos:
        words = len(answer.split())
        if not 3 <= words <= 90:
            raise ValueError(f"answer of {words} words (keep 3-90): {question!r}")
        if not answer.rstrip().endswith((".", "!", "?", ")", '"', "”")) and "\n" not in answer:
            raise ValueError(f"answer does not end cleanly: {question!r}")
    for text in train + heldout:
        if len(text.split()) > 30:
            raise ValueError(f"prompt over 30 words: {text!r}")


def write(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    demos = round_robin([parse_demos(b) for b in DEMO_BLOCKS])
    topics = [parse_prompts(b) for b in PROMPT_BLOCKS]
    train = round_robin([[p for i, p in enumerate(t) if i % HELDOUT_EVERY != HELDOUT_EVERY - 1] for t in topics])
    heldout = round_robin([[p for i, p in enumerate(t) if i % HELDOUT_EVERY == HELDOUT_EVERY - 1] for t in topics])
    check(demos, train, heldout)
    OUT.mkdir(parents=True, exist_ok=True)
    write(OUT / "demonstrations.jsonl", [
        {"id": f"demo-{i:04d}", "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for i, (q, a) in enumerate(demos, start=1)])
    write(OUT / "prompts_train.jsonl", [{"id": f"p-train-{i:04d}", "prompt": p} for i, p in enumerate(train, start=1)])
    write(OUT / "prompts_heldout.jsonl", [{"id": f"p-heldout-{i:04d}", "prompt": p} for i, p in enumerate(heldout, start=1)])
    print(f"demonstrations: {len(demos)}, prompts_train: {len(train)}, prompts_heldout: {len(heldout)}")


if __name__ == "__main__":
    main()
